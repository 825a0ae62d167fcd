"""The plan as one self-contained HTML file: tables plus inline-SVG charts (cost per cloud, cost
per scenario, GPUs per pool, VRAM use per node, warm versus scale-to-zero cost per service). No
scripts, no external resources. Pure."""

from __future__ import annotations

from html import escape

from planner.clouds import cloud_label
from planner.reports.document import Report
from planner.reports.presentation import (
    CLOUD_HEADER,
    SCENARIO_HEADER,
    SERVICE_HEADER,
    broken_lines,
    cloud_rows,
    cloud_summary,
    group_lines,
    money,
    note_lines,
    percent,
    plan_title,
    pool_table,
    scenario_rows,
    service_rows,
)
from planner.reports.svg import Series, bar_chart, hbar_chart

GIB = 1024**3

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1a202c;max-width:1100px}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem 0;font-size:0.85rem}
th,td{border:1px solid #cbd5e0;padding:0.25rem 0.5rem;text-align:left;vertical-align:top}
th{background:#edf2f7}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
.bad{color:#c53030}.note{color:#744210}code{background:#edf2f7;padding:0 0.2rem}
.n{white-space:nowrap}
"""


def _cell(text: str) -> str:
    """A table cell; a short one (a number, a date, a duration) never wraps."""
    short = " class='n'" if len(text) <= 12 else ""
    return f"<td{short}>{escape(text)}</td>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _charts(report: Report) -> list[str]:
    clouds = report["clouds"]
    by_cloud = bar_chart(
        f"Cost per cloud ({report['scenario']}, $/h)",
        [cloud_label(c["cloud"]) for c in clouds],
        [
            Series("plan", tuple(c["cost_per_hour"] for c in clouds)),
            Series("first-fit decreasing", tuple(c["ffd"]["cost_per_hour"] for c in clouds)),
            Series("lower bound", tuple(c["lower_bound_cost_per_hour"] or 0.0 for c in clouds)),
        ],
        lambda v: f"${v:,.0f}",
    )
    scenarios = report["scenarios"]
    names = list(scenarios)
    cost = bar_chart(
        plan_title(report, "Cost per scenario, $/h", scenario=False),
        names,
        [
            Series("plan", tuple(scenarios[n]["cost_per_hour"] for n in names)),
            Series(
                "first-fit decreasing", tuple(scenarios[n]["ffd"]["cost_per_hour"] for n in names)
            ),
            Series(
                "lower bound",
                tuple(scenarios[n]["lower_bound_cost_per_hour"] or 0.0 for n in names),
            ),
        ],
        lambda v: f"${v:,.0f}",
    )
    pools = sorted({p["name"] for n in names for p in scenarios[n]["pools"]})
    gpus = bar_chart(
        plan_title(report, "GPUs per pool"),
        pools,
        [
            Series(
                n,
                tuple(
                    float(
                        sum(
                            p["nodes"] * p["gpus_per_node"]
                            for p in scenarios[n]["pools"]
                            if p["name"] == pool
                        )
                    )
                    for pool in pools
                ),
            )
            for n in names
        ],
        lambda v: f"{v:.0f}",
        width=min(1060, max(720, 60 * len(pools))),
    )
    nodes = scenarios[report["scenario"]]["nodes"]
    vram = hbar_chart(
        f"VRAM use per node ({report['scenario']}, GiB)",
        [n["name"] for n in nodes],
        [Series("needed by planned pods", tuple(n["vram_used_bytes"] / GIB for n in nodes))],
        lambda v: f"{v:.0f}",
        capacity=[n["gpus"] * n["vram_per_gpu_bytes"] / GIB for n in nodes],
        capacity_name="VRAM of the node",
    )
    costed = [
        (s["name"], per_day, per_day - (s["scale_to_zero_savings_per_day"] or 0.0))
        for s in report["services"]
        if (per_day := s["warm_cost_per_day"]) is not None
    ]
    warm = hbar_chart(
        "Cost per day: warm versus scale-to-zero ($)",
        [name for name, _, _ in costed],
        [
            Series("always warm", tuple(always for _, always, _ in costed)),
            Series("scale to zero", tuple(zero for _, _, zero in costed)),
        ],
        lambda v: f"${v:,.0f}",
    )
    return [by_cloud, cost, gpus, vram, warm]


def render_html(report: Report) -> str:
    """The report as a standalone HTML document."""
    main = report["scenario"]
    charts = _charts(report)
    actions = "".join(
        f"<li><b>{escape(s['name'])}</b>: {escape(s['action'])}"
        + (
            "<br>annotations: "
            + ", ".join(
                f"<code>{escape(k)}: {escape(v)}</code>" for k, v in s["annotations"].items()
            )
            if s["annotations"]
            else ""
        )
        + "</li>"
        for s in report["services"]
    )
    unplaceable = "".join(
        f"<li class='bad'><b>{escape(u['inference_service'])}</b> {escape(u['component'])} "
        f"({escape(u['scenario'])}, {u['pods']} pods): {escape(u['reason'])}</li>"
        for u in report["unplaceable"]
    )
    notes = "".join(f"<li class='note'>{escape(w)}</li>" for w in note_lines(report))
    broken = "".join(f"<li class='bad'>{escape(w)}</li>" for w in broken_lines(report))
    groups = "".join(f"<li>{escape(g)}</li>" for g in group_lines(report))
    prices = _table(
        ["pool", "cloud", "instance", "$/h", "source", "as of", "note"],
        [
            [
                p["name"],
                cloud_label(p["cloud"]),
                p["instance_type"],
                f"{p['price_per_hour']:.3f}",
                p["price_source"],
                p["price_as_of"],
                p["price_note"],
            ]
            for p in report["catalog"]["pools"]
        ],
    )
    body = [
        "<h1>GPU capacity plan</h1>",
        f"<p>Cloud <b>{escape(cloud_label(report['cloud']))}</b>, scenario <b>{escape(main)}</b>: "
        f"{escape(money(report['cost_per_hour'], '/h'))} "
        f"(first-fit decreasing {escape(money(report['ffd']['cost_per_hour'], '/h'))}, lower bound "
        f"{escape(money(report['lower_bound_cost_per_hour'], '/h'))}, gap {escape(percent(report['gap']))}). "
        f"{report['inputs']['inference_services']} InferenceServices and "
        f"{report['inputs']['llm_inference_services']} LLMInferenceServices from "
        f"{escape(str(report['inputs']['source']))}.</p>",
        f"<h2>Cost per cloud ({escape(main)})</h2>",
        f"<p>{escape(cloud_summary(report))}</p>",
        charts[0],
        _table(CLOUD_HEADER, cloud_rows(report)),
        f"<h2>{escape(plan_title(report, 'Cost per scenario', scenario=False))}</h2>",
        charts[1],
        _table(SCENARIO_HEADER, scenario_rows(report)),
        f"<h2>{escape(plan_title(report, 'Node pools'))}</h2>",
        charts[2],
        _table(*pool_table(report["pools"])),
        f"<h2>{escape(plan_title(report, 'First-fit decreasing baseline'))}</h2>",
        _table(*pool_table(report["ffd"]["pools"])),
        "<h2>VRAM use per node</h2>",
        charts[3],
        "<h2>Decision frame per service</h2>",
        _table(SERVICE_HEADER, service_rows(report["services"])),
        charts[4],
        *(
            [f"<h2>{escape(plan_title(report, 'Multi-node groups'))}</h2>", f"<ul>{groups}</ul>"]
            if groups
            else []
        ),
        "<h2>Recommended actions</h2>",
        f"<ul>{actions}</ul>",
    ]
    if unplaceable:
        body += ["<h2>Cannot be placed</h2>", f"<ul>{unplaceable}</ul>"]
    if broken:
        body += ["<h2>Could not be read</h2>", f"<ul>{broken}</ul>"]
    if notes:
        body += ["<h2>Notes</h2>", f"<ul>{notes}</ul>"]
    body += ["<h2>Prices</h2>", prices]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>vramfit capacity plan</title>"
        f"<style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
