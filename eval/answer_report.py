"""What `ragtune eval answers` reports: each system's scores with their intervals, the paired
differences, as answers.md, answers.json and answers.png, and one MLflow run."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.core.atomic import write_json_atomic, write_text_atomic
from ragtune.core.table import markdown_table
from ragtune.core.tracking import start_run
from ragtune.eval.uncertainty import Interval, mean_interval


def _mean(values: list[float | None]) -> float | None:
    """Mean of the defined values; None when there are none."""
    defined = [v for v in values if v is not None]
    return statistics.fmean(defined) if defined else None


@dataclass
class SystemScore:
    """One system's scores over the questions (with 95% intervals), and its answers."""

    system: str
    model: str
    k: int | None
    f1: Interval
    rouge_l: Interval
    recall_at_k: float | None
    grounded: float | None
    citation_precision: float | None
    faithfulness: float | None
    latency_p50_s: float
    cost_per_1k_usd: float
    answers: list[dict[str, Any]] = field(repr=False)

    @classmethod
    def from_answers(
        cls, system: str, model: str, k: int | None, answers: list[dict], cost: float, seed: int
    ) -> SystemScore:
        return cls(
            system=system,
            model=model,
            k=k,
            f1=mean_interval([a["f1"] for a in answers], seed=seed),
            rouge_l=mean_interval([a["rouge_l"] for a in answers], seed=seed),
            recall_at_k=_mean([a["retrieved_gold"] for a in answers]),
            grounded=_mean([a["grounded"] for a in answers]) if k else None,
            citation_precision=_mean([a["citation_precision"] for a in answers]),
            faithfulness=_mean([a["faithful"] for a in answers]),
            latency_p50_s=statistics.median(a["seconds"] for a in answers),
            cost_per_1k_usd=cost,
            answers=answers,
        )

    def line(self) -> str:
        """F1 and ROUGE-L with their intervals, for a progress line."""
        return f"F1 {_interval(self.f1)}  ROUGE-L {_interval(self.rouge_l)}"


@dataclass
class Comparison:
    """`system − baseline` on the same questions, with paired 95% intervals."""

    system: str
    baseline: str
    f1: Interval
    rouge_l: Interval


@dataclass
class AnswerEvalResult:
    """Every system's scores, the comparisons, and where the report went."""

    systems: list[SystemScore]
    comparisons: list[Comparison]
    pricing_tier: str
    report_dir: Path

    def table(self) -> str:
        """One row per system: scores with intervals, grounding, latency and cost."""
        header = [
            "system",
            "k",
            "F1 [95% CI]",
            "ROUGE-L [95% CI]",
            "source recall@k",
            "grounded",
            "citations ok",
            "p50 latency (s)",
            f"$ / 1k queries ({self.pricing_tier})",
        ]
        if any(s.faithfulness is not None for s in self.systems):
            header.insert(7, "judge: faithful")
        rows = []
        for s in self.systems:
            row = [
                s.system,
                _figure(s.k, "{}"),
                _interval(s.f1),
                _interval(s.rouge_l),
                _figure(s.recall_at_k),
                _figure(s.grounded),
                _figure(s.citation_precision),
                f"{s.latency_p50_s:.2f}",
                f"{s.cost_per_1k_usd:.4f}",
            ]
            if len(header) > len(row):
                row.insert(7, _figure(s.faithfulness))
            rows.append(row)
        return markdown_table(header, rows)

    def comparison_table(self) -> str:
        """One row per comparison: the paired differences and whether their interval excludes 0."""
        header = ["system − baseline", "ΔF1 [95% CI]", "ΔROUGE-L [95% CI]", "F1 differs"]
        rows = [
            [f"{c.system} − {c.baseline}", str(c.f1), str(c.rouge_l), "yes" if c.f1.excludes_zero() else "no"]
            for c in self.comparisons
        ]
        return markdown_table(header, rows)

    def markdown(self) -> str:
        questions = len(self.systems[0].answers)
        return (
            f"{questions} questions; 95% intervals from a paired bootstrap over the questions.\n\n"
            f"{self.table()}\n\n{self.comparison_table()}\n"
        )


def _figure(value: float | None, template: str = "{:.3f}") -> str:
    return "—" if value is None else template.format(value)


def _interval(value: Interval) -> str:
    return f"{value.mean:.3f} [{value.low:.3f}, {value.high:.3f}]"


def write_report(result: AnswerEvalResult, config: dict[str, Any]) -> None:
    """answers.md (tables), answers.json (config, scores, comparisons, every answer) and
    answers.png (F1 and ROUGE-L per system with their intervals)."""
    out = result.report_dir
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "answers.md", result.markdown())
    write_json_atomic(
        out / "answers.json",
        {
            "config": config,
            "systems": [asdict(s) for s in result.systems],
            "comparisons": [asdict(c) for c in result.comparisons],
        },
    )
    _chart(result, out / "answers.png")


def _chart(result: AnswerEvalResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = result.systems
    figure, axes = plt.subplots(figsize=(max(7, 1.5 * len(scores)), 3.8))
    width = 0.38
    positions = range(len(scores))
    for offset, label, metric in ((-width / 2, "token F1", "f1"), (width / 2, "ROUGE-L", "rouge_l")):
        values = [getattr(s, metric) for s in scores]
        errors = [[v.mean - v.low for v in values], [v.high - v.mean for v in values]]
        axes.bar(
            [p + offset for p in positions],
            [v.mean for v in values],
            width,
            yerr=errors,
            capsize=3,
            label=label,
        )
    axes.set_xticks(list(positions), [s.system for s in scores], rotation=15, ha="right")
    axes.set_ylabel("score vs reference answer")
    axes.set_title(f"{len(scores[0].answers)} held-out questions (bars: 95% bootstrap interval)")
    axes.legend()
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    tmp.replace(path)


def metric_prefix(system: str) -> str:
    """A system's name as an MLflow metric prefix: `fine-tuned + RAG` → `fine_tuned_rag`."""
    cleaned = "".join(c if c.isalnum() else "_" for c in system.lower())
    return "_".join(part for part in cleaned.split("_") if part)


def log_to_mlflow(result: AnswerEvalResult, config) -> str:
    """One MLflow run in the configured experiment: metrics per system and comparison, the files."""
    run = start_run(
        config.tracking_uri(), config.tracking.experiment, "answer-eval", {"ragtune.job": "eval-answers"}
    )
    run.log_params(
        {
            "questions": len(result.systems[0].answers),
            "k": config.k,
            "max_tokens": config.max_tokens,
            "systems": ", ".join(s.system for s in result.systems),
        }
    )
    metrics: dict[str, float | None] = {}
    for s in result.systems:
        name = metric_prefix(s.system)
        metrics |= {
            f"{name}.f1": s.f1.mean,
            f"{name}.f1_low": s.f1.low,
            f"{name}.f1_high": s.f1.high,
            f"{name}.rouge_l": s.rouge_l.mean,
            f"{name}.latency_p50_s": s.latency_p50_s,
            f"{name}.recall_at_k": s.recall_at_k,
            f"{name}.grounded": s.grounded,
            f"{name}.citation_precision": s.citation_precision,
            f"{name}.faithfulness": s.faithfulness,
        }
    for c in result.comparisons:
        name = f"{metric_prefix(c.system)}_vs_{metric_prefix(c.baseline)}"
        metrics |= {
            f"{name}.f1_diff": c.f1.mean,
            f"{name}.f1_diff_low": c.f1.low,
            f"{name}.f1_diff_high": c.f1.high,
        }
    run.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)}, step=0)
    for name in ("answers.md", "answers.json", "answers.png"):
        run.log_artifact(result.report_dir / name)
    run.finish()
    return run.run_id
