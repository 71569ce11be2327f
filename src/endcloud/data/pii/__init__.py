"""Rule detectors and word lists behind `endcloud.data.privacy` (import the API from there)."""
