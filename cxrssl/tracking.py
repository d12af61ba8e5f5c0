"""Live training logs with DVCLive: what a running stage has done so far, for ``dvc exp show`` and ``dvc plots``.

Each training stage writes one DVCLive folder, ``live/pretrain/<method>/`` or
``live/finetune/<cell>/``: ``metrics.json`` (the latest value of everything,
declared as metrics in dvc.yaml) and ``plots/metrics/<name>.tsv`` (every
value, with its step; an output, not among dvc.yaml's charts). Values are
written as they happen, so ``dvc exp show`` in another terminal shows a
running stage's latest step.

Names:

* ``train/loss``: the batch loss, by optimiser step (at most 50 points an
  epoch, and the epoch's last step);
* ``epoch/...``: by epoch, at the step that ends it: ``epoch/epoch``,
  ``epoch/loss`` (the epoch's mean), ``epoch/lr``, and what the stage
  measures then (``epoch/embedding_std``, the collapse indicator of
  pretraining; ``epoch/val_auroc_macro``, fine-tuning's model selection);
* ``perf/images_per_s``: the one wall-clock figure. Everything else is the
  same on every rerun; tests compare the folders without ``perf``.

Fine-tuning trains one model per seed: its names start with ``seed<k>/``.

DVC removes a stage's outputs before it runs it, so a stage resumed from its
checkpoint starts a fresh folder: the checkpoint keeps every row logged so
far (:meth:`Tracker.rows`), and :meth:`Tracker.replay` writes them again
before training goes on, so the log is whole.
"""

from __future__ import annotations

from pathlib import Path

from cxrssl import distributed

#: Points per epoch of the per-step loss: enough to see an epoch's shape, few enough for a 1,000-step epoch.
STEP_POINTS = 50


class Tracker:
    """One DVCLive folder, written by the main process only (``folder`` None: nothing is written)."""

    def __init__(self, folder: Path | None, prefix: str = ""):
        self.prefix = prefix
        self.rows: list[list] = []  # [step, {name: value}] in the order logged
        self._live = None
        if folder is not None and distributed.is_main():
            self._live = _files_only(folder)

    def seed(self, seed: int) -> Tracker:
        """This tracker for one fine-tuning seed: the same folder, names under ``seed<k>/``."""
        child = Tracker(None, f"seed{seed}/")
        child._live = self._live  # its rows are its own: each seed's checkpoint keeps its own
        return child

    def log(self, step: int, values: dict[str, float]) -> None:
        """Write ``values`` at ``step`` (names get this tracker's prefix) and keep them for :meth:`replay`."""
        named = {self.prefix + name: float(value) for name, value in values.items()}
        self.rows.append([int(step), named])
        self._write(int(step), named)

    def replay(self, rows: list) -> None:
        """Write again the rows a checkpoint kept (already prefixed), before training resumes."""
        for step, values in rows:
            self.rows.append([int(step), dict(values)])
            self._write(int(step), values)

    def close(self) -> None:
        if self._live is not None:
            self._live.end()

    def _write(self, step: int, values: dict[str, float]) -> None:
        if self._live is None:
            return
        self._live.step = step
        for name, value in values.items():
            self._live.log_metric(name, value)
        self._live.make_summary()


def _files_only(folder: Path):
    """DVCLive writing its files and nothing else.

    dvc.yaml declares the folder and ``dvc exp run`` records it, so DVCLive
    needs neither an experiment of its own nor dvc.yaml edits, nor the look
    at the repository it takes on start (which fails in a repository without
    commits, dvclive 3.49.1): ``_init_dvc`` is skipped.
    """
    from dvclive import Live  # here: only a stage that trains needs it

    class FilesOnly(Live):
        def _init_dvc(self) -> None:
            pass

    return FilesOnly(str(folder), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)
