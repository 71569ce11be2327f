"""How the loop is doing, per round and per day: a Markdown table and a PNG.

    endcloud evolve status            # the registry and the last rounds
    endcloud evolve report            # <work_dir>/report.md + report.png

Per round: held-out mean Final of champion and candidate, the decision, data counts, cloud calls.
Per day (from the service's log): turns, escalation rate, share answered locally, cloud cost,
hand-offs to a person (requested, answered, median / p95 wait, abandoned).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROUND_COLS = ["id", "status", "selected", "corrections", "labelled", "train_new", "train_replay",
              "cloud_calls", "cloud_cost", "champion_final", "candidate_final", "diff_lower",
              "champion_after"]


def rounds(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f"SELECT {', '.join(ROUND_COLS)}, started_at, reason "
                                          "FROM evolve_rounds ORDER BY id")]


def days(conn: Any, abandon_after_s: float = 1800.0,
         now: datetime | None = None) -> list[dict[str, Any]]:
    """Per UTC day: turns, escalation rate, share answered by the end model, cloud cost, the
    end drafts' groundedness (mean over drafts with a checkable fact; share of those with an
    unsupported one), and hand-offs to a person (`handoffs`).

    A turn is escalated when the cloud was asked (it has a cloud status); a low score only
    recorded (`after_mode: record`) is not an escalation. Staff replies are not turns."""
    # CASE, not a boolean inside AVG/SUM: PostgreSQL does not add booleans
    sql = """SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS turns,
                    AVG(CASE WHEN cloud_status IS NOT NULL THEN 1.0 ELSE 0.0 END) AS escalation_rate,
                    AVG(CASE WHEN answered_by = 'end' THEN 1.0 ELSE 0.0 END) AS local_share,
                    SUM(cost) AS cloud_cost,
                    SUM(CASE WHEN cloud_status IS NOT NULL THEN 1 ELSE 0 END) AS cloud_calls,
                    AVG(grounded) AS grounded_mean,
                    AVG(CASE WHEN grounded IS NULL THEN NULL WHEN grounded < 1 THEN 1.0 ELSE 0.0 END)
                        AS ungrounded_share
             FROM serve_exchanges WHERE answered_by != 'staff' GROUP BY day ORDER BY day"""
    out = {r["day"]: dict(r) for r in conn.execute(sql)}
    for day, h in handoffs(conn, abandon_after_s, now).items():
        out.setdefault(day, {"day": day, "turns": 0, "escalation_rate": None, "local_share": None,
                             "cloud_cost": 0.0, "cloud_calls": 0}).update(h)
    return [out[d] for d in sorted(out)]


HANDOFF_COLS = ["handoffs", "handoffs_answered", "handoff_wait_p50_s", "handoff_wait_p95_s",
                "handoffs_abandoned"]


def handoffs(conn: Any, abandon_after_s: float = 1800.0,
             now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per UTC day a hand-off was requested: how many, how many a person answered, the median and
    p95 wait for the first staff reply (seconds), and how many were abandoned (nobody answered
    before the conversation was closed or released, or within `abandon_after_s`)."""
    now = now or datetime.now(timezone.utc)
    per: dict[str, list[Any]] = {}
    for r in conn.execute("SELECT requested_at, first_reply_at, ended_at FROM serve_handoffs"):
        asked = datetime.fromisoformat(r["requested_at"])
        row = per.setdefault(r["requested_at"][:10], [0, [], 0])
        row[0] += 1
        if r["first_reply_at"] is not None:
            row[1].append((datetime.fromisoformat(r["first_reply_at"]) - asked).total_seconds())
        elif r["ended_at"] is not None or (now - asked).total_seconds() > abandon_after_s:
            row[2] += 1
    return {day: {"handoffs": n, "handoffs_answered": len(waits),
                  "handoff_wait_p50_s": _quantile(waits, 0.5), "handoff_wait_p95_s": _quantile(waits, 0.95),
                  "handoffs_abandoned": abandoned}
            for day, (n, waits, abandoned) in per.items()}


def _quantile(xs: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation (numpy's default); None for no data."""
    if not xs:
        return None
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 1)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |\n" for r in rows)


def write_report(conn: Any, out_dir: str | Path) -> tuple[Path, Path | None]:
    """report.md (both tables) and report.png (Final per round; escalation + cost per day)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r, d = rounds(conn), days(conn)
    md = ("# endcloud evolve\n\n## Rounds\n\n" + table(r, ROUND_COLS) + "\n## Days\n\n"
          + table(d, ["day", "turns", "escalation_rate", "local_share", "cloud_calls", "cloud_cost",
                     "grounded_mean", "ungrounded_share", *HANDOFF_COLS]))
    (out / "report.md").write_text(md, encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return out / "report.md", None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    judged = [x for x in r if x["candidate_final"] is not None]
    a.plot([x["id"] for x in judged], [x["champion_final"] for x in judged], "o-", label="champion")
    a.plot([x["id"] for x in judged], [x["candidate_final"] for x in judged], "s--", label="candidate")
    a.set_xlabel("round")
    a.set_ylabel("held-out mean Final")
    a.legend()
    nan = float("nan")  # a day with hand-offs but no turns: a gap
    b.plot([x["day"] for x in d], [nan if x["escalation_rate"] is None else x["escalation_rate"] for x in d],
           "o-", label="escalation rate")
    b.plot([x["day"] for x in d], [nan if x["local_share"] is None else x["local_share"] for x in d],
           "s-", label="answered locally")
    b.set_ylim(0, 1)
    b.legend(loc="upper left")
    c = b.twinx()
    c.bar([x["day"] for x in d], [x["cloud_cost"] or 0 for x in d], alpha=0.2, color="gray")
    c.set_ylabel("cloud cost / day")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=120)
    plt.close(fig)
    return out / "report.md", out / "report.png"
