"""The run folder: refuses to overwrite another run, clears stale temp files, lists what was written."""

from __future__ import annotations

from pathlib import Path

RUN_FILES = ("checkpoint.npz", "history.json", "curves.png", "filters_before.png", "filters_after.png")


class RunFolderError(Exception):
    """The run folder holds a previous run and neither --resume nor --force was given."""


class RunFolder:
    """One run's output folder and the files written into it, in order."""

    def __init__(self, path: Path, resume: bool = False, force: bool = False):
        self.path = Path(path)
        self.written: list[str] = []
        existing = self.existing_run_files()
        if existing and not (resume or force):
            raise RunFolderError(f"{self.path} already holds a run ({', '.join(existing)}); pass --resume to "
                                 "continue it, --force to replace it, or --out DIR for a new folder")
        self._replaced = existing if force else []  # deleted at the first write, once the new run is under way
        self.path.mkdir(parents=True, exist_ok=True)

    def existing_run_files(self) -> list[str]:
        """The files of a previous run present in the folder."""
        return [name for name in RUN_FILES if (self.path / name).is_file()]

    def file(self, name: str) -> Path:
        """The path of run file ``name``; temp files left beside it by an interrupted save are removed first."""
        for old in self._replaced:  # --force: the previous run's files go, so none is mistaken for this run's
            (self.path / old).unlink(missing_ok=True)
        self._replaced = []
        self.remove_stale_temp_files(name)
        if name not in self.written:
            self.written.append(name)
        return self.path / name

    def remove_stale_temp_files(self, name: str) -> list[Path]:
        """Delete ``.<name>.*.tmp`` files (what a killed atomic save leaves); returns them."""
        stale = [p for p in self.path.glob(f".{name}.*.tmp") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale
