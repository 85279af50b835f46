"""Model registry: versioned checkpoints, a promotion gate and pruning.

Checkpoints live under ``<root>/<project>-<id>/v<NNNN>/`` where ``root`` is a local folder
(default ``services.checkpoints``) or any ``fsspec`` URL (``s3://``, ``gs://``,
``memory://`` ...). A version is complete when its ``MANIFEST.json`` (file names, sizes and
SHA-256) exists; the manifest is always written last.

- local: the bundle is saved into a ``.tmp-*`` folder, the manifest added, and the folder
  renamed into place (atomic on one file system): readers never see half a checkpoint.
- remote: the bundle is saved locally, uploaded under the version's key prefix, and the
  manifest uploaded last; loaders ignore versions without a manifest.

A new version is promoted (made active) when there is no active version, or it passes
the promotion rule against the active one (:class:`concner.jobs.promotion.PromotionRule`:
``services.promote_rule`` and ``services.promote_tolerance``), unless the active version
is pinned (:meth:`ModelRegistry.pin`; a rollback is a pin of an older version). The last
``services.keep_versions`` versions are kept, and never the active one is deleted. The database row of a version is written only after its files are complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from concner.errors import ModelError, ModelVersionError
from concner.jobs.promotion import PromotionRule, Scores
from concner.store.model_versions import ModelVersion

MANIFEST = "MANIFEST.json"
#: sub-folder of a version holding the stage-1 teacher (teacher/student active learning)
TEACHER_DIR = "teacher"


@dataclass(frozen=True)
class Published:
    version: ModelVersion
    promoted: bool
    reason: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder: Path) -> dict:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {"files": {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                      for p in files}}


def is_local(url: str) -> bool:
    import fsspec.utils

    return fsspec.utils.get_protocol(str(url)) in ("file", "local")


def rollback_target(versions) -> ModelVersion | None:
    """The version a rollback without a version number makes active: the newest one older
    than the active version whose files are kept (None: there is none)."""
    active = next((v for v in versions if v.active), None)
    if active is None:
        return None
    older = [v for v in versions if v.version < active.version and v.deleted_at is None]
    return max(older, key=lambda v: v.version) if older else None


class ModelRegistry:
    """Versions of one store's projects under ``root`` (see module doc)."""

    def __init__(self, store, root: str, *, keep_versions: int = 3,
                 promote_tolerance: float = 0.5, promote_rule: str = "mean",
                 cache_dir: str | None = None):
        self.store = store
        self.root = str(root).rstrip("/")
        self.keep_versions = keep_versions
        self.rule = PromotionRule(promote_rule, promote_tolerance)
        self.local = is_local(self.root)
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "concner-model-cache")

    @classmethod
    def from_config(cls, store, config) -> ModelRegistry:
        s = config.services
        return cls(store, s.checkpoints, keep_versions=s.keep_versions,
                   promote_tolerance=s.promote_tolerance, promote_rule=s.promote_rule)

    # -- locations ---------------------------------------------------------------------
    def project_dir(self, name: str) -> str:
        project = self.store.get_project(name)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "project"
        return f"{self.root}/{slug}-{project.id}"

    def _fs(self):
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.root)
        return fs

    # -- publishing --------------------------------------------------------------------
    def publish(self, name: str, bundle, *, run_id: int | None, mean_f1: float | None,
                teacher=None, f1_by_lang: dict[str, float] | None = None) -> Published:
        """Write ``bundle`` as the next version, record it, promote it if it passes the gate,
        and prune old versions. ``teacher`` (the stage-1 model of a distilled ``bundle``)
        is saved in the version's ``teacher/`` folder (see :meth:`load_teacher`).
        ``f1_by_lang`` (target language -> dev F1) feeds the ``every_language`` rule."""
        version = self.store.next_model_version(name)
        url = f"{self.project_dir(name)}/v{version:04d}"
        if self.local:
            self._write_local(bundle, Path(url), teacher)
        else:
            self._write_remote(bundle, url, teacher)
        mv = self.store.add_model_version(name, run_id=run_id, path=url, mean_f1=mean_f1,
                                          version=version)
        promote, reason = self.should_promote(name, mean_f1, f1_by_lang)
        if promote:
            self.store.activate_model_version(mv.id)
            mv = self.store.get_model_version(mv.id)
        self.prune(name)
        return Published(mv, promote, reason)

    def should_promote(self, name: str, mean_f1: float | None,
                       f1_by_lang: dict[str, float] | None = None) -> tuple[bool, str]:
        """``(promote, reason in words)`` for a new version with these dev F1 scores."""
        active = self.store.active_model_version(name)
        if active is None:
            decision = self.rule.decide(Scores(mean_f1, f1_by_lang or {}), None)
            return decision.promote, decision.reason
        pinned = self.store.get_project(name).pinned_version_id
        decision = self.rule.decide(
            Scores(mean_f1, f1_by_lang or {}), self.version_scores(name, active),
            active_version=active.version,
            pinned_version=active.version if pinned == active.id else None)
        return decision.promote, decision.reason

    def version_scores(self, name: str, mv: ModelVersion) -> Scores:
        """The stored dev F1 of version ``mv``: per language the newest metrics row (a later
        evaluation on the current dev sets supersedes the one made when it was trained),
        and their mean (the version's recorded mean when it has no per-language rows)."""
        by_lang = {m.language: m.f1 for m in self.store.metrics(name)
                   if m.model_version_id == mv.id and m.split == "dev"}
        mean = sum(by_lang.values()) / len(by_lang) if by_lang else mv.mean_f1
        return Scores(mean, by_lang)

    # -- pinning -----------------------------------------------------------------------
    def pinned(self, name: str) -> ModelVersion | None:
        """The pinned version of project ``name`` (it is the active one), or None."""
        pinned_id = self.store.get_project(name).pinned_version_id
        return None if pinned_id is None else self.store.get_model_version(pinned_id)

    def find_version(self, name: str, version: int) -> ModelVersion:
        """Version number ``version`` of project ``name``, with its files still there."""
        versions = self.store.model_versions(name, include_deleted=True)
        kept = ", ".join(f"v{v.version}" for v in versions if v.deleted_at is None) or "none"
        mv = next((v for v in versions if v.version == version), None)
        if mv is None:
            raise ModelVersionError(f"project {name!r} has no model v{version}; its versions "
                                    f"with files: {kept}")
        if mv.deleted_at is not None:
            raise ModelVersionError(f"v{version} of {name!r} was pruned (services.keep_versions"
                                    f" = {self.keep_versions}): its files are gone; pick one "
                                    f"of {kept}")
        return mv

    def pin(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the active model of ``name`` and keep it active: while it is
        pinned, new versions are stored and evaluated but never promoted."""
        mv = self.find_version(name, version)
        self.local_folder(mv)  # refuses an incomplete checkpoint before it becomes active
        self.store.activate_model_version(mv.id, pin=True)
        return self.store.get_model_version(mv.id)

    def rollback(self, name: str, version: int | None = None) -> ModelVersion:
        """Pin an older version than the active one: ``version``, or by default the newest
        older version whose files are kept."""
        active = self.store.active_model_version(name)
        if active is None:
            raise ModelVersionError(f"project {name!r} has no active model to roll back from")
        if version is None:
            previous = rollback_target(self.store.model_versions(name, include_deleted=True))
            if previous is None:
                raise ModelVersionError(f"no version older than the active v{active.version} "
                                        f"of {name!r} is kept to roll back to")
            version = previous.version
        elif version >= active.version:
            raise ModelVersionError(f"v{version} is not older than the active "
                                    f"v{active.version}; to make it active, pin it")
        return self.pin(name, version)

    def unpin(self, name: str) -> ModelVersion | None:
        """Return ``name`` to the promotion rule: the pinned version stays active until a
        new version passes the rule. Returns the version that was pinned (None: none)."""
        was = self.store.unpin_model_version(name)
        return None if was is None else self.store.get_model_version(was)

    def _write_local(self, bundle, final: Path, teacher=None) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            raise ModelError(f"checkpoint folder {final} already exists; the registry and the "
                             "store disagree (remove the folder or restore the database)")
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            bundle.save(tmp)
            if teacher is not None:
                teacher.save(tmp / TEACHER_DIR)
            (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp), indent=1), "utf-8")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_remote(self, bundle, url: str, teacher=None) -> None:
        fs = self._fs()
        with tempfile.TemporaryDirectory(prefix="concner-upload-") as tmp:
            folder = Path(tmp) / "model"
            bundle.save(folder)
            if teacher is not None:
                teacher.save(folder / TEACHER_DIR)
            manifest = _manifest(folder)
            for rel in manifest["files"]:
                fs.put_file(str(folder / rel), f"{url}/{rel}")
            with fs.open(f"{url}/{MANIFEST}", "w") as fh:  # last: marks the version complete
                fh.write(json.dumps(manifest, indent=1))

    # -- loading -----------------------------------------------------------------------
    def local_folder(self, mv: ModelVersion) -> Path:
        """A local folder holding version ``mv`` (downloaded and verified when remote)."""
        if mv.deleted_at is not None:
            raise ModelError(f"model v{mv.version} was pruned from {mv.path}; use a newer one")
        if is_local(mv.path):
            folder = Path(mv.path)
            if not (folder / MANIFEST).is_file():
                raise ModelError(f"checkpoint {folder} has no {MANIFEST}: it is incomplete")
            return folder
        fs = self._fs()
        if not fs.exists(f"{mv.path}/{MANIFEST}"):
            raise ModelError(f"checkpoint {mv.path} has no {MANIFEST}: it is incomplete")
        raw = fs.cat_file(f"{mv.path}/{MANIFEST}")
        manifest = json.loads(raw)
        # the cache key covers the content, so a reused URL never serves stale files
        key = hashlib.sha256(mv.path.encode() + b"\0" + raw).hexdigest()[:24]
        target = self.cache_dir / key
        if (target / MANIFEST).is_file():
            return target
        tmp = self.cache_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        try:
            for rel, info in manifest["files"].items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{mv.path}/{rel}", str(dest))
                if _sha256(dest) != info["sha256"]:
                    raise ModelError(f"checkpoint {mv.path}/{rel} does not match its manifest")
            (tmp / MANIFEST).write_text(json.dumps(manifest), "utf-8")
            os.replace(tmp, target)
        except FileExistsError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / MANIFEST).is_file():
                raise
        return target

    def load(self, mv: ModelVersion, device: str = "cpu"):
        from concner.method.model import NerBundle

        return NerBundle.load(self.local_folder(mv), device=device)

    def load_teacher(self, mv: ModelVersion, device: str = "cpu"):
        """The stage-1 teacher saved with version ``mv``, or None (saved only when the
        retrain distilled and the active-learning strategy needs a teacher)."""
        from concner.method.model import NerBundle

        folder = self.local_folder(mv) / TEACHER_DIR
        return NerBundle.load(folder, device=device) if folder.is_dir() else None

    def load_active(self, name: str, device: str = "cpu"):
        """The active model of project ``name`` and its version row."""
        mv = self.store.active_model_version(name)
        if mv is None:
            raise ModelError(f"project {name!r} has no active model yet; run a retrain first")
        return self.load(mv, device), mv

    # -- pruning -----------------------------------------------------------------------
    def prune(self, name: str) -> list[int]:
        """Delete all but the newest ``keep_versions`` versions (never the active one) and
        leftovers of interrupted writes. Returns the pruned version numbers."""
        versions = self.store.model_versions(name)
        keep = {mv.id for mv in versions[-self.keep_versions:]} | {
            mv.id for mv in versions if mv.active}
        doomed = [mv for mv in versions if mv.id not in keep]
        fs = self._fs()
        for mv in doomed:
            if fs.exists(mv.path):
                fs.rm(mv.path, recursive=True)
        self.store.mark_model_deleted([mv.id for mv in doomed])
        if self.local:
            base = Path(self.project_dir(name))
            for leftover in base.glob(".*tmp-*") if base.is_dir() else []:
                shutil.rmtree(leftover, ignore_errors=True)
        return [mv.version for mv in doomed]

    # -- deleting a project ------------------------------------------------------------
    def delete_project(self, name: str) -> dict[str, int]:
        """Delete project ``name``: its rows (:meth:`concner.store.Store.delete_project`, one
        transaction; refused while a run is queued or running), then its checkpoint folder
        ``project_dir(name)``. Rows go first: if removing files fails, nothing in the store
        points at them and the folder can be deleted by hand. Returns rows deleted per table
        plus ``checkpoint_folders`` (1 when the folder existed and was removed)."""
        folder = self.project_dir(name)
        deleted = self.store.delete_project(name)
        fs = self._fs()
        deleted["checkpoint_folders"] = 0
        if fs.exists(folder):
            fs.rm(folder, recursive=True)
            deleted["checkpoint_folders"] = 1
        return deleted
