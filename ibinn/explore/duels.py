"""Two models' best OoD detectors set against each other on every OoD set both were tested on
(:func:`detector_duels`), and the count of wins and ties in one sentence (:func:`duel_summary`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Two ROC-AUCs this close (in points) are not told apart: the OoD sets hold a few hundred images.
TIE_POINTS = 1.0


@dataclass(frozen=True)
class DetectorDuel:
    """The best OoD detector of two models on one OoD set."""

    ood_set: str
    best: tuple[tuple[str, str, float], tuple[str, str, float]]  #: (model, detector, AUC) each
    margin: float  #: first AUC − second AUC, in points

    @property
    def winner(self) -> str | None:
        """The model whose best detector is ahead by more than ``TIE_POINTS``, else None."""
        if abs(self.margin) <= TIE_POINTS:
            return None
        return self.best[0][0] if self.margin > 0 else self.best[1][0]

    @property
    def sentence(self) -> str:
        (m1, d1, a1), (m2, d2, a2) = self.best
        scores = f"{m1} {d1} {a1:.1f} vs {m2} {d2} {a2:.1f}"
        if self.winner is None:
            return f"**{self.ood_set}**: a tie ({scores}, within {TIE_POINTS:g} points)."
        return f"**{self.ood_set}**: {self.winner} ahead by {abs(self.margin):.1f} points ({scores})."


def detector_duels(aucs: dict[str, dict[str, dict[str, float]]]) -> list[DetectorDuel]:
    """For two models' :func:`detector_aucs` (model label → table), the best detector of each on
    every OoD set both were tested on, and by how much the first model's is ahead."""
    if len(aucs) != 2:
        raise ValueError(f"detector_duels compares two models, got {len(aucs)}")
    (name_a, table_a), (name_b, table_b) = aucs.items()
    duels = []
    for ood_set in [s for s in table_a if s in table_b and table_a[s] and table_b[s]]:
        best_a = max(table_a[ood_set].items(), key=lambda item: item[1])
        best_b = max(table_b[ood_set].items(), key=lambda item: item[1])
        duels.append(DetectorDuel(ood_set, ((name_a, *best_a), (name_b, *best_b)),
                                  best_a[1] - best_b[1]))
    return duels


def duel_summary(duels: Sequence[DetectorDuel]) -> str:
    """One sentence counting the OoD sets each model's best detector wins, e.g.
    ``"IB-INN wins on 2 of 3 OoD sets, ResNet on 1, 0 ties."``."""
    if not duels:
        return "No OoD set was tested on both models."
    names = [duels[0].best[0][0], duels[0].best[1][0]]
    wins = [sum(d.winner == name for d in duels) for name in names]
    ties = sum(d.winner is None for d in duels)
    return (f"{names[0]} wins on {wins[0]} of {len(duels)} OoD sets, {names[1]} on {wins[1]}, "
            f"{ties} tie{'s' if ties != 1 else ''}.")
