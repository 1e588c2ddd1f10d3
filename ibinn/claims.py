"""The paper's qualitative claims, checked on the model cards of each family of the zoo.

Each claim becomes a :class:`ClaimCheck`: the paper's figure (from Table 1 of Ardizzone et al.,
NeurIPS 2020, on CIFAR-10), ours (from the cards' full-test-set metrics), an explicit rule, whether
the rule holds, and, where it does not, a one-line reason quoting the measurement that breaks it and
one plain sentence a teacher can say in class, built from the same measurements and Table 1's.

Trends over γ are judged by the sign of Spearman's rank correlation between γ and the metric over
the IB-INN cards (γ = ∞ ranks above every finite γ); comparisons between models by a strict
inequality between named cards. γ = 0 has no classifier (Table 1 leaves its error and calibration
empty), so trends of classification metrics start at γ = 0.1.

Example:
    >>> import ibinn
    >>> checks = check_claims(ibinn.zoo.list_models(), "fashion-mnist")
    >>> checks[0].claim, checks[0].holds
    ('Classification error falls as γ grows', True)
    >>> print(markdown_claims(checks).splitlines()[0])
    | Claim | Paper (CIFAR-10) | Ours | Rule | Holds | Why not |
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .evaluate import CONVENTIONS
from .ood import set_label
from .zoo import ModelCard

#: Modes of the IB-INN's γ sweep (class-NLL is a different loss, not a point of the sweep).
SWEEP_MODES = ("ib", "lx-only", "ly-only")
#: How much worse class-NLL must classify to count as "far worse" (Table 1: 61.75 % vs 10.27 %).
FAR_WORSE_FACTOR = 2.0
#: Table 1's CIFAR-10 test errors (%) of class-NLL and of the IB-INN at γ = 1.
PAPER_ERROR = {"class-nll": 61.75, "gamma-1": 10.27}
#: Table 1's average OoD entropy increase (nats) of the IB-INN at γ = 1.
PAPER_ENTROPY_INCREASE = 0.38
#: Table 1's figures of γ = 1 and of each discriminative baseline, by card metric.
PAPER_BASELINES = {
    "test/calibration_geo_mean": (1.26, {"vib": 6.66, "resnet": 6.23, "irevnet": 4.19}),
    "ood_average/entropy_increase": (PAPER_ENTROPY_INCREASE, {"vib": 0.17, "resnet": 0.18, "irevnet": 0.24}),
}


@dataclass(frozen=True)
class ClaimCheck:
    """One claim of the paper checked on one family's cards."""

    claim: str
    paper: str  #: the paper's figures, with their source
    ours: str  #: the same figures from our cards
    rule: str  #: the explicit test that decides ``holds``
    holds: bool | None  #: None: the cards needed for the rule are missing
    reason: str = ""  #: for a claim that does not hold (or cannot be checked): why, measured
    say: str = ""  #: for a claim that does not hold: one plain sentence for a class, measured


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties get mean ranks; ``inf`` ranks above every number).

    Example:
        >>> round(spearman([0.1, 1, 10, math.inf], [40, 30, 20, 25]), 6)
        -0.8
    """
    from scipy.stats import spearmanr  # here: `import ibinn` stays quick

    return float(spearmanr(x, y).statistic)


def _gamma_text(gamma: float) -> str:
    return "∞" if math.isinf(gamma) else f"{gamma:g}"


def _sweep(cards: list[ModelCard], metric: Callable[[dict], float | None],
           smallest: float) -> list[tuple[float, float]]:
    """(γ, metric) of the sweep's cards with γ ≥ ``smallest`` that have the metric, by γ."""
    points = [(c.gamma, metric(c.metrics)) for c in cards
              if c.kind == "ibinn" and c.mode in SWEEP_MODES and c.gamma >= smallest]
    return sorted((g, v) for g, v in points if v is not None)


def _at(gamma: float) -> str:
    return "γ → ∞" if math.isinf(gamma) else f"γ = {gamma:g}"


def _trend(claim: str, noun: str, source: str, paper_points: tuple[tuple[float, float], ...],
           cards: list[ModelCard], metric: Callable[[dict], float | None], unit: str, rising: bool,
           smallest: float, suffix: str = "") -> ClaimCheck:
    """``noun`` (e.g. "the calibration error") rises (``rising``) or falls with γ over the sweep;
    ``paper_points`` are Table 1's (γ, value), quoted after ``source`` (then ``suffix``)."""
    paper = f"{source}: " + " → ".join(f"{v:.2f}{unit} ({_at(g)})" for g, v in paper_points) + suffix
    points = _sweep(cards, metric, smallest)
    span = f"γ = {_gamma_text(points[0][0])} … {_gamma_text(points[-1][0])}" if points else "γ"
    rule = f"Spearman ρ(γ, value) {'>' if rising else '<'} 0 over {span}"
    ours = ", ".join(f"{_gamma_text(g)}: {v:.2f}{unit}" for g, v in points)
    if len(points) < 3:
        return ClaimCheck(claim, paper, ours or "–", rule, None,
                          f"only {len(points)} sweep card(s) with this metric")
    rho = spearman([g for g, _ in points], [v for _, v in points])
    holds = rho > 0 if rising else rho < 0
    reason = say = ""
    if not holds:  # the adjacent pair of γ that goes most against the claimed direction
        steps = [(b[1] - a[1] if rising else a[1] - b[1], a, b)
                 for a, b in zip(points, points[1:], strict=False)]
        _, a, b = min(steps)
        reason = (f"ρ = {rho:+.2f}: from γ = {_gamma_text(a[0])} to {_gamma_text(b[0])} it goes "
                  f"{a[1]:.2f}{unit} → {b[1]:.2f}{unit}")
        values = [v for _, v in points]
        (g0, p0), (g1, p1) = paper_points[0], paper_points[-1]
        say = (f"Here {noun} {'falls' if rising else 'rises'} from {a[1]:.2f}{unit} at "
               f"{_at(a[0])} to {b[1]:.2f}{unit} at {_at(b[0])} instead of "
               f"{'rising' if rising else 'falling'}: across {span} it stays within "
               f"{min(values):.2f}–{max(values):.2f}{unit}, where the paper's goes from "
               f"{p0:.2f}{unit} ({_at(g0)}) to {p1:.2f}{unit} ({_at(g1)}).")
    return ClaimCheck(claim, paper, f"{ours} (ρ = {rho:+.2f})", rule, holds, reason, say)


def _card(cards: list[ModelCard], kind: str, mode: str, gamma: float | None = None) -> ModelCard | None:
    return next((c for c in cards if c.kind == kind and c.mode == mode
                 and (gamma is None or c.gamma == gamma)), None)


def _model_name(kind: str) -> str:
    """A baseline's name as the paper writes it ("ResNet", "i-RevNet", "VIB")."""
    from .baselines import BASELINES  # here: `import ibinn` stays quick

    return BASELINES[kind].title.split(" (")[0] if kind in BASELINES else kind


def _beats_baselines(claim: str, source: str, cards: list[ModelCard], key: str, unit: str,
                     lower_is_better: bool, better: str, as_good: str) -> ClaimCheck:
    """γ = 1 against every discriminative baseline of the family on one metric; ``better`` (e.g.
    "better calibrated") and ``as_good`` ("as well calibrated") say a baseline's win in words."""
    paper_mine, paper_theirs = PAPER_BASELINES[key]
    paper = (f"{source}: {paper_mine:.2f}{unit} vs "
             + ", ".join(f"{_model_name(k)} {v:.2f}" for k, v in paper_theirs.items()) + unit)
    word = "lower" if lower_is_better else "higher"
    rule = f"γ = 1 strictly {word} than every baseline's"
    ibinn = _card(cards, "ibinn", "ib", 1.0)
    baselines = [c for c in cards if c.kind != "ibinn"]

    def value(c: ModelCard) -> float | None:
        section, field = key.split("/")
        return c.metrics.get(section, {}).get(field)

    values = {c.kind: value(c) for c in baselines if value(c) is not None}
    if ibinn is None or value(ibinn) is None or not values:
        return ClaimCheck(claim, paper, "–", rule, None, "no γ = 1 card or no baseline card")
    mine = value(ibinn)
    ours = f"γ = 1: {mine:.2f}{unit}; " + ", ".join(f"{k}: {v:.2f}{unit}" for k, v in values.items())
    beaten = {k: v for k, v in values.items() if (v <= mine if lower_is_better else v >= mine)}
    reason = "; ".join(f"{k} {v:.2f}{unit} is not {'above' if lower_is_better else 'below'} "
                       f"γ = 1's {mine:.2f}{unit}" for k, v in beaten.items())
    say = ""
    if beaten:
        names = " and ".join(f"the {_model_name(k)}" for k in beaten)
        in_paper = " and ".join(f"the {_model_name(k)}'s {paper_theirs[k]:.2f}" for k in beaten
                             if k in paper_theirs)
        strictly = all(f"{v:.2f}" != f"{mine:.2f}" for v in beaten.values())  # as the reader sees them
        say = (f"Here {names} {'is' if len(beaten) == 1 else 'are'} "
               + (f"{better} than" if strictly else f"at least {as_good} as") + " γ = 1 ("
               + ", ".join(f"{_model_name(k)} {v:.2f}" for k, v in beaten.items())
               + f" against γ = 1's {mine:.2f}{unit})"
               + (f", where in the paper γ = 1's {paper_mine:.2f}{unit} beats {in_paper}" if in_paper
                  else "") + ".")
    return ClaimCheck(claim, paper, ours, rule, not beaten, reason, say)


def check_claims(cards: list[ModelCard], family: str) -> list[ClaimCheck]:
    """Every claim of the paper checked on the cards of ``family`` (full-test-set metrics)."""
    cards = [c for c in cards if c.family == family]

    def test(field: str) -> Callable[[dict], float | None]:
        return lambda m: m.get("test", {}).get(field)

    def auc(m: dict) -> float | None:
        return m.get("ood_average", {}).get("auc_typicality")

    checks = [
        _trend("Classification error falls as γ grows", "the classification error", "Table 1",
               ((1.0, PAPER_ERROR["gamma-1"]), (math.inf, 8.72)), cards, test("error"), " %",
               rising=False, smallest=0.1, suffix="; Fig. 6"),
        _trend("Bits/dim rise as γ grows", "the bits/dim", "Table 1",
               ((0.0, 4.80), (1.0, 5.25), (math.inf, 17.27)), cards, test("bits_per_dim"), "",
               rising=True, smallest=0.0),
        _trend("Calibration error rises from small to large γ", "the calibration error",
               "Table 1 (geo-mean)", ((1.0, PAPER_BASELINES["test/calibration_geo_mean"][0]),
                                      (math.inf, 3.98)),
               cards, test("calibration_geo_mean"), " %", rising=True, smallest=0.1, suffix="; Fig. 6"),
        _trend("OoD detection weakens as γ grows", "the OoD AUC", "Table 1 (AUC geo-mean)",
               ((0.0, 74.51), (1.0, 68.76), (math.inf, 61.25)), cards, auc, "", rising=False,
               smallest=0.0),
        _class_nll_far_worse(cards),
        _beats_baselines("γ = 1 is better calibrated than every discriminative baseline",
                         "Table 1 (geo-mean)", cards, "test/calibration_geo_mean", " %",
                         lower_is_better=True, better="better calibrated", as_good="as well calibrated"),
        _entropy_increase_positive(cards),
        _beats_baselines("γ = 1's OoD entropy increase beats the baselines'", "Table 1", cards,
                         "ood_average/entropy_increase", " nats", lower_is_better=False,
                         better="more uncertain on OoD data", as_good="as uncertain on OoD data"),
    ]
    return checks


def _class_nll_far_worse(cards: list[ModelCard]) -> ClaimCheck:
    claim = "Class-NLL classifies far worse than the IB-INN"
    paper = f"Table 1: {PAPER_ERROR['class-nll']} % vs {PAPER_ERROR['gamma-1']} % (γ = 1)"
    rule = f"error(class-NLL) > {FAR_WORSE_FACTOR:g} × error(γ = 1)"
    nll, ibinn = _card(cards, "ibinn", "class-nll"), _card(cards, "ibinn", "ib", 1.0)
    if nll is None or ibinn is None:
        return ClaimCheck(claim, paper, "–", rule, None, "no class-NLL or no γ = 1 card")
    a, b = nll.metrics["test"]["error"], ibinn.metrics["test"]["error"]
    holds = a > FAR_WORSE_FACTOR * b
    pa, pb = PAPER_ERROR["class-nll"], PAPER_ERROR["gamma-1"]
    reason = say = ""
    if not holds:
        reason = (f"class-NLL errs only {a / b:.2f}× as often ({a:.2f} % vs {b:.2f} %): against "
                  f"Table 1, class-NLL errs {a / pa:.2f}× and γ = 1 {b / pb:.2f}× as often as the paper's")
        # the gap closes as γ = 1 errs more or class-NLL less than Table 1's (b / pb > a / pa): the
        # sentence names the model further from its Table 1 error, as a factor
        because = (
            f"our γ = 1 model falls short of the paper's: {b:.0f} % error where the paper reaches "
            f"{pb:.0f} % (class-NLL: {a:.0f} % against the paper's {pa:.0f} %)"
            if abs(math.log(b / pb)) >= abs(math.log(a / pa)) else
            f"our class-NLL model classifies better than the paper's: {a:.0f} % error where the "
            f"paper's errs {pa:.0f} % (γ = 1: {b:.0f} % against the paper's {pb:.0f} %)")
        say = f"Here the class-NLL model errs only {a / b:.1f}× as often as γ = 1, because {because}."
    return ClaimCheck(claim, paper, f"{a:.2f} % vs {b:.2f} %", rule, holds, reason, say)


def _entropy_increase_positive(cards: list[ModelCard]) -> ClaimCheck:
    claim = "γ = 1 predicts more uncertainly on OoD data"
    paper = f"Table 1: {PAPER_ENTROPY_INCREASE:+.2f} nats (average), positive on every set"
    rule = "average entropy increase (γ = 1) > 0"
    ibinn = _card(cards, "ibinn", "ib", 1.0)
    value = ibinn.metrics.get("ood_average", {}).get("entropy_increase") if ibinn else None
    if value is None:
        return ClaimCheck(claim, paper, "–", rule, None, "no γ = 1 card with OoD metrics")
    averaged = ibinn.metrics["ood_average"].get("sets", list(ibinn.metrics["ood"]))  # older cards: all
    per_set = {s: ibinn.metrics["ood"][s]["entropy_increase"] for s in averaged}
    ours = f"{value:+.2f} nats (" + ", ".join(f"{s} {v:+.2f}" for s, v in per_set.items()) + ")"
    negative = [s for s, v in per_set.items() if v <= 0]
    reason = say = ""
    if value <= 0:
        reason = f"not positive on {', '.join(negative)}"
        sets = " and ".join(f"{set_label(s)} ({per_set[s]:+.2f} nats)" for s in negative)
        than = "more confident on" if all(per_set[s] < 0 for s in negative) else "no less confident on"
        say = (f"Here γ = 1 is {than} {sets} than on the test images, which pulls its "
               f"average entropy increase to {value:+.2f} nats, where the paper's is "
               f"{PAPER_ENTROPY_INCREASE:+.2f} nats and positive on every set.")
    return ClaimCheck(claim, paper, ours, rule, value > 0, reason, say)


def stale_note(cards: list[ModelCard], family: str) -> str:
    """A warning when some of ``family``'s cards predate the current Table 1 conventions."""
    stale = [c.name for c in cards if c.family == family
             and c.metrics.get("conventions") != CONVENTIONS]
    if not stale:
        return ""
    return (f"{len(stale)} card(s) of {family} were evaluated before Table 1's conventions (e.g. "
            f"{stale[0]}): their OoD averages are arithmetic; run `ibinn zoo evaluate`.")


def markdown_claims(checks: list[ClaimCheck]) -> str:
    """The checks as one Markdown table, then the sentence for class of each claim that does not hold."""
    mark = {True: "✓ holds", False: "✗ does not hold", None: "– not checked"}
    lines = ["| Claim | Paper (CIFAR-10) | Ours | Rule | Holds | Why not |", "|---|---|---|---|---|---|"]
    lines += [f"| {c.claim} | {c.paper} | {c.ours} | {c.rule} | {mark[c.holds]} | {c.reason} |"
              for c in checks]
    if sayings := [c for c in checks if c.say]:
        lines += ["", "In class, one sentence for each claim that does not hold:", ""]
        lines += [f"- *{c.claim}.* {c.say}" for c in sayings]
    return "\n".join(lines) + "\n"


def markdown_report(cards: list[ModelCard]) -> str:
    """The claims table of every family among ``cards``, one section each."""
    parts = []
    for family in dict.fromkeys(c.family for c in cards):
        label = next(c.dataset_label for c in cards if c.family == family)
        note = stale_note(cards, family)
        parts.append(f"### Claims on {label}\n\n" + markdown_claims(check_claims(cards, family))
                     + (f"\n{note}\n" if note else ""))
    return "\n".join(parts)
