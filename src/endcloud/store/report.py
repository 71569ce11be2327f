"""How the loop is doing, per round and per day: a Markdown table and a PNG.

    endcloud evolve status            # the registry and the last rounds
    endcloud evolve report            # <work_dir>/report.md + report.png

Per round: held-out mean Final of champion and candidate, the decision, data counts, cloud calls.
Per day (from the service's log): turns, escalation rate, share answered locally, cloud cost.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

ROUND_COLS = ["id", "status", "selected", "corrections", "labelled", "train_new", "train_replay",
              "cloud_calls", "cloud_cost", "champion_final", "candidate_final", "diff_lower",
              "champion_after"]


def rounds(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(f"SELECT {', '.join(ROUND_COLS)}, started_at, reason "
                                          "FROM evolve_rounds ORDER BY id")]


def days(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per UTC day: turns, escalation rate, share answered by the end model, cloud cost, and the
    end drafts' groundedness (mean over drafts with a checkable fact; share of those with an
    unsupported one).

    A turn is escalated when the cloud was asked (it has a cloud status); a low score only
    recorded (`after_mode: record`) is not an escalation."""
    sql = """SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS turns,
                    AVG(cloud_status IS NOT NULL) AS escalation_rate,
                    AVG(answered_by = 'end') AS local_share, SUM(cost) AS cloud_cost,
                    SUM(cloud_status IS NOT NULL) AS cloud_calls,
                    AVG(grounded) AS grounded_mean,
                    AVG(CASE WHEN grounded IS NULL THEN NULL ELSE grounded < 1 END) AS ungrounded_share
             FROM serve_exchanges GROUP BY day ORDER BY day"""
    return [dict(r) for r in conn.execute(sql)]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |\n" for r in rows)


def write_report(conn: sqlite3.Connection, out_dir: str | Path) -> tuple[Path, Path | None]:
    """report.md (both tables) and report.png (Final per round; escalation + cost per day)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r, d = rounds(conn), days(conn)
    md = ("# endcloud evolve\n\n## Rounds\n\n" + table(r, ROUND_COLS) + "\n## Days\n\n"
          + table(d, ["day", "turns", "escalation_rate", "local_share", "cloud_calls", "cloud_cost",
                     "grounded_mean", "ungrounded_share"]))
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
    b.plot([x["day"] for x in d], [x["escalation_rate"] for x in d], "o-", label="escalation rate")
    b.plot([x["day"] for x in d], [x["local_share"] for x in d], "s-", label="answered locally")
    b.set_ylim(0, 1)
    b.legend(loc="upper left")
    c = b.twinx()
    c.bar([x["day"] for x in d], [x["cloud_cost"] or 0 for x in d], alpha=0.2, color="gray")
    c.set_ylabel("cloud cost / day")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=120)
    plt.close(fig)
    return out / "report.md", out / "report.png"
