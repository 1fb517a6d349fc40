"""All configuration, from the environment (prefix DIGITS_), validated once at start-up."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.checkpoint import DEFAULT_CHECKPOINT
from model.imaging.decode import DEFAULT_MAX_PIXELS

ENV_PREFIX = "DIGITS_"
MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every field is read from DIGITS_<FIELD NAME>, e.g. DIGITS_MAX_UPLOAD_BYTES."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    checkpoint: Path = Field(DEFAULT_CHECKPOINT, description="checkpoint file; its .sha256 must lie beside it")
    checkpoint_dir: Path | None = Field(
        None, description="folder POST /admin/reload may load checkpoints from; default: DIGITS_CHECKPOINT's folder"
    )
    admin_token: SecretStr | None = Field(
        None,
        description="bearer token for POST /admin/reload (16 characters or more); unset: the admin endpoint is off",
    )
    oip_model_name: str = Field(
        "digits",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="the model's name in the Open Inference Protocol (/v2/models/{name})",
    )
    refusal_rate: float | None = Field(
        None,
        ge=0,
        le=0.05,
        description="how strict the refusal of images with no digit is: the share of real digits it may turn away, "
        "an operating point the checkpoint holds (0.0005-0.05), in every input lane; 0: refusal off; default: "
        "the checkpoint's operating point for each lane (0.002 where it names none)",
    )
    max_upload_bytes: int = Field(5 * MiB, gt=0, description="largest image upload, in bytes")
    max_batch_bytes: int = Field(
        32 * MiB,
        gt=0,
        description="largest /predict/batch or /v2 infer body, in bytes; also the most bytes of such large bodies "
        "a worker holds at once",
    )
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="largest image, in pixels (width x height)")
    max_batch_files: int = Field(64, gt=0, le=1024, description="most images in one /predict/batch request")
    torch_threads: int = Field(0, ge=0, le=256, description="torch CPU threads per worker; 0: CPUs / workers")
    work_threads: int = Field(
        2, gt=0, le=64, description="threads per worker decoding and running images; more requests wait their turn"
    )
    work_memory_mb: int = Field(
        160,
        ge=16,
        description="MiB of decoded image data a worker's threads hold at once; a large upload waits for room",
    )
    max_batch_size: int = Field(64, gt=0, le=1024, description="most single-image requests in one forward pass")
    batch_wait_ms: float = Field(
        0.0, ge=0, le=100, description="how long a batch waits for company; 0: none, a lone request is not delayed"
    )
    workers: int = Field(
        1, ge=0, le=64, description="worker processes (python -m app), a listening socket each; 0: one per CPU"
    )
    host: str = Field("127.0.0.1", description="bind address (python -m app)")
    port: int = Field(8000, gt=0, lt=65536, description="port (python -m app)")
    max_in_flight: int = Field(
        256, gt=0, description="requests handled at once per worker; past it, 503 with Retry-After at once"
    )
    request_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds before a request is answered 503 timeout (checked every min(0.25 s, timeout/4))",
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="largest request line plus headers, in bytes; past it 431 (414 for the URL)"
    )
    max_url_bytes: int = Field(8 * 1024, ge=256, description="largest request target (path and query), in bytes")
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a connection has to send a whole request line and headers; then 408"
    )
    body_timeout: float = Field(
        20.0, gt=0, description="seconds a request has to send its whole body once its headers are in; then 408"
    )
    max_connections: int = Field(
        1000, gt=0, description="open connections per worker; past it a new one is answered 503 and closed"
    )
    graceful_shutdown: int = Field(
        10, ge=0, description="seconds in-flight requests get to finish after SIGTERM (python -m app)"
    )
    gc_freeze: bool = Field(True, description="once ready, freeze start-up objects out of the garbage collector")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    otel: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry instrumentation, to the globally configured providers; off, it "
        "costs nothing, on it checks the providers on every request",
    )
    feedback_db: SecretStr | None = Field(
        None,
        description="database of corrections sent to POST /feedback: sqlite:///path/feedback.db (a file, WAL) or a "
        "postgresql://user:password@host/db URL (what several replicas share); unset: feedback is off",
    )
    feedback_keep_uploads: bool = Field(
        False, description="keep each correction's upload beside its 28x28 inputs (to DIGITS_FEEDBACK_MAX_KEPT_BYTES)"
    )
    feedback_max_kept_bytes: int = Field(
        1 * MiB, gt=0, description="largest upload kept with a correction; past it only the 28x28 inputs are kept"
    )
    feedback_max_records: int = Field(
        100_000, gt=0, description="most corrections stored; past it POST /feedback answers 507 feedback_full"
    )
    feedback_per_minute: int = Field(
        30, gt=0, description="corrections a client (by address) may send a minute, per worker; past it 429"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins allowed by CORS; empty: CORS off"
    )

    @field_validator("admin_token", "checkpoint_dir", "feedback_db", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be 16 characters or more (a guessable token guards nothing)")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @cached_property
    def worker_processes(self) -> tuple[int | None, str]:
        """How many worker processes share this machine's CPUs, and where that was read:
        DIGITS_WORKERS when it is set (`python -m app` always sets it for its workers; 0: one per
        CPU), else the server that started this process (`uvicorn --workers N`, gunicorn's `-w N`,
        or WEB_CONCURRENCY, their default); None when nothing says (another server, an embedding
        program)."""
        if "workers" in self.model_fields_set:
            return self.worker_count, "DIGITS_WORKERS"
        found = launcher_workers()
        return found if found else (None, "nothing says how many; set DIGITS_WORKERS to the processes sharing the CPUs")

    @cached_property
    def worker_count(self) -> int:
        """DIGITS_WORKERS, 0 read as one worker per CPU this process may use."""
        return self.workers or available_cpus()

    @cached_property
    def effective_torch_threads(self) -> int:
        """torch_threads, or the CPUs this process may use (cgroup quota included) shared among
        the worker processes; 1 when their number is unknown, the safe choice: every CPU beside
        unseen siblings makes them fight, one thread alone costs little (bench/LOG.md,
        "Start commands")."""
        if self.torch_threads:
            return self.torch_threads
        workers = self.worker_processes[0]
        return max(1, available_cpus() // workers) if workers else 1


#: Servers that start worker processes: the options that say how many, and whether WEB_CONCURRENCY
#: is their default for it.
LAUNCHERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "uvicorn": (("--workers",), True),
    "gunicorn": (("--workers", "-w"), True),
    "hypercorn": (("--workers", "-w"), False),
}


def launcher_workers(pids: tuple[int, ...] | None = None) -> tuple[int, str] | None:
    """The worker count of the server command (uvicorn, gunicorn, hypercorn) that started this
    process (its parent, for `--workers N`; itself, when it runs alone), and how it was read; None
    if none of them did.

    A worker of these servers is not told how many siblings it has, and each one that takes every
    CPU for torch makes two workers on two cores fight (bench/LOG.md, "Start commands").
    """
    for pid in pids or (os.getppid(), os.getpid()):
        try:
            args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        found = workers_option(args)
        if found:
            return found
    return None


def workers_option(args: list[str]) -> tuple[int, str] | None:
    """(N, source) from a server's command line (`uvicorn ... --workers N`, `gunicorn -w N ...`,
    `python -m uvicorn ...`), WEB_CONCURRENCY where that server reads it, else (1, ...); None when
    the command is not one of LAUNCHERS."""
    if len(args) > 2 and args[1] == "-m":  # python -m uvicorn ...
        args = [args[2], *args[3:]]
    at = next((i for i, a in enumerate(args[:3]) if Path(a).name in LAUNCHERS), None)
    if at is None:
        return None
    name = Path(args[at]).name
    options, reads_env = LAUNCHERS[name]
    rest = args[at + 1 :]
    for i, a in enumerate(rest):
        value = None
        if a in options and i + 1 < len(rest):
            value = rest[i + 1]
        elif a.startswith("--workers="):
            value = a.split("=", 1)[1]
        elif a.startswith("-w") and not a.startswith("--") and "-w" in options and len(a) > 2:
            value = a[2:]
        if value is not None and value.isdigit():
            return max(1, int(value)), f"{name} --workers"
    concurrency = os.environ.get("WEB_CONCURRENCY", "")
    if reads_env and concurrency.isdigit():
        return max(1, int(concurrency)), "WEB_CONCURRENCY"
    return 1, f"{name}, one worker"


def available_cpus() -> int:
    """CPUs in this process's affinity mask, capped by a cgroup v2 or v1 CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cpus, quota)) if quota else cpus


def _cgroup_quota() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, -(-int(text[0]) // int(text[1])))  # ceil(quota / period)
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, -(-quota // period))
    except (OSError, ValueError):
        pass
    return None


class SettingsError(SystemExit):
    """Start-up stops: a setting has a bad value. The message names the variable."""


#: Settings whose values are never written out, not even in an error.
SECRETS = frozenset({"admin_token", "feedback_db"})  # a database URL may hold a password


def shown(name: str, value: object) -> str:
    return "(hidden)" if name in SECRETS else repr(value)


def load_settings() -> Settings:
    """Settings from the environment, or a SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"{ENV_PREFIX}{str(err['loc'][0]).upper()}={shown(str(err['loc'][0]), err.get('input'))}: {err['msg']}"
            for err in e.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
