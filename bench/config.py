"""Suite files: loading, profiles, command-line overrides, validation, and the resolved cell list.

A suite file states only what differs from the typed defaults below and in each variant's Config.
Every problem is reported as one UsageError naming the file (or override), the key and what is allowed.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from bench.errors import UsageError
from bench.registry import DATASETS, METRICS, TASKS, VARIANTS, RegistryError, load_all
from bench.variant import STRICT, VariantConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = "default"

PositiveInt = Annotated[int, Field(gt=0)]


class Budget(BaseModel):
    model_config = STRICT
    gen_steps: PositiveInt  # generator steps per cell: the one budget every cell of a suite shares


class Train(BaseModel):
    model_config = STRICT
    batch_size: PositiveInt = 256  # real samples per critic step
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    # Cells run at once: on CPU, worker processes (0 = one per core); on CUDA, worker processes
    # per GPU (0 = one), on cuda:0..N-1; with executor "ray", cells in flight (0 = as many as the
    # cluster's resources allow).
    workers: Annotated[int, Field(ge=0)] = 0
    # torch threads per CPU worker (more threads per process ran slower here)
    threads: PositiveInt = 1
    # Where cells run: "local" (worker processes on this machine) or "ray" (one Ray task per cell
    # on the cluster of `ray.address`; needs the `ray` extra). Results are the same either way.
    executor: Literal["local", "ray"] = "local"
    # Ray: GPUs each cell asks for (a fraction lets small cells share one GPU); default 1 when
    # the device is CUDA, else 0.
    gpus_per_cell: Annotated[float, Field(ge=0)] | None = None
    # Ray: CPUs each cell asks for (Ray limits the cell's threads to it)
    cpus_per_cell: Annotated[float, Field(gt=0)] = 1.0
    # Ray: times a cell whose worker or node died is started again from its last checkpoint
    retries: Annotated[int, Field(ge=0)] = 2


class RayCluster(BaseModel):
    model_config = STRICT
    # The cluster cells run on with train.executor = "ray": "" starts a private Ray on this machine
    # for the run; "auto" joins the cluster started on this machine with `ray start`;
    # "HOST:6379" joins a cluster's head; "ray://HOST:10001" connects through the Ray client.
    address: str = ""


class Eval(BaseModel):
    model_config = STRICT
    every: PositiveInt  # evaluate every this many generator steps, and at the last step
    at_start: bool = True  # also evaluate the untrained networks (step 0)
    num_samples: PositiveInt = 2500  # generated and real samples per evaluation (PacGAN: 2,500)
    diag_samples: PositiveInt = 256  # real and generated samples for the gradient-norm diagnostic
    hist_bins: Annotated[int, Field(ge=2)] = 101  # bins of the critic weight histogram
    # Image metrics: feature extractors to measure in ("domain": a LeNet trained on the dataset;
    # "inception": the standard FID network, meant for a GPU). Each gets its own metric columns.
    backbones: Annotated[list[Literal["domain", "inception"]], Field(min_length=1)] = ["domain"]
    num_real: PositiveInt | None = None  # real images for image metrics; default: num_samples
    reference_split: Literal["train", "held_out"] = "train"  # the split generated images face
    kid_subsets: PositiveInt = 100  # KID subsets (torch-fidelity's default; each costs 3 kernels)
    inception_weights: str | None = None  # Inception weights file; else see bench/backbones
    # torchvision's ImageNet AlexNet state dict (alexnet-owt-7be5be79.pth) for `lpips_alex`; no
    # package ships it, so without it that column stays empty and says why.
    lpips_weights: str | None = None
    # How normalisation layers see evaluation inputs. "batch": networks stay in training mode, so
    # BatchNorm uses the statistics of each evaluation batch of `batch_size` inputs (what the
    # harness always did; Pix2Pix evaluates this way). "running": networks in eval mode, BatchNorm
    # uses the running statistics of training, and results do not depend on `batch_size`.
    # Dropout is off in "running" unless the variant keeps it at test time (pix2pix).
    batch_norm: Literal["batch", "running"] = "batch"
    batch_size: PositiveInt = 4096  # inputs per forward pass at evaluation
    # Likelihood metrics (nll_nats, bits_per_dim, neg_elbo_nats): held-out images scored (the first
    # of a fixed shuffle of the held-out split, the same for every cell), and the importance samples
    # of a VAE's bound (Burda et al. 2016 report k = 5,000; the bound tightens as k grows).
    likelihood_samples: PositiveInt = 1000
    iwae_k: PositiveInt = 100
    # Perceptual path length (ppl_z, ppl_w; Karras et al. 2019): latent pairs per evaluation (the
    # paper: 100,000), the step ε, and where on the path t lies ("full": t ~ U(0, 1); "end": t = 0).
    ppl_samples: PositiveInt = 1000
    ppl_epsilon: Annotated[float, Field(gt=0)] = 1e-4
    ppl_sampling: Literal["full", "end"] = "full"
    # Music metrics (EB, UPC, QN, TD): how a generator's tanh output becomes a binary piano roll
    # ("threshold": a note where it is above 0, "bernoulli": a note with probability (x + 1) / 2,
    # MuseGAN's hard thresholding and Bernoulli sampling), and the steps a qualified note lasts.
    binarize: Literal["threshold", "bernoulli"] = "threshold"
    qn_min_steps: PositiveInt = 3


class Checkpoint(BaseModel):
    model_config = STRICT
    every: Annotated[int, Field(ge=0)] = (
        0  # generator steps between checkpoints; 0 = every evaluation
    )


class Tracking(BaseModel):
    model_config = STRICT
    enabled: bool = True  # mirror the run to MLflow (the run folder is written either way)
    uri: str | None = None  # tracking URI; else MLFLOW_TRACKING_URI; else results/mlflow.db
    log_weights: bool = False  # also log each cell's final weights (networks.pt) as an artifact


# --- Tuning (bench tune): search spaces per variant entry, objective, pruner ------------------------


class FloatParam(BaseModel):
    model_config = STRICT
    type: Literal["float"]
    low: float
    high: float
    log: bool = False  # sample log-uniformly (learning rates, penalty weights)


class IntParam(BaseModel):
    model_config = STRICT
    type: Literal["int"]
    low: int
    high: int
    log: bool = False


class CategoricalParam(BaseModel):
    model_config = STRICT
    type: Literal["categorical"]
    choices: Annotated[list[Any], Field(min_length=1)]  # any values the field accepts, lists too


SearchParam = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Tuning(BaseModel):
    model_config = STRICT
    # A metric of the suite ("fid": its column in the first backbone, "fid/lenet-mnist5k") or a
    # column it fills ("fid/inception"); higher or lower is better as for that column.
    objective: str
    dataset: str | None = None  # the dataset trials train on; default: the suite's first
    pruner: Literal["median", "hyperband", "none"] = "median"  # stops poor trials at an evaluation
    startup_trials: Annotated[int, Field(ge=0)] = 5  # trials before the pruner and TPE take over
    trials: PositiveInt = 20  # trials per variant entry (the same for every entry: equal effort)
    final_seeds: Annotated[int, Field(ge=2)] = 5  # K: seeds the best configuration is re-run with
    heartbeat_seconds: PositiveInt = 10  # a trial silent for 2x this long is failed and re-queued
    # entry label → {config field → search range}; entries without one are not tuned
    space: dict[str, dict[str, SearchParam]] = {}


# --- Claims and regression bands (bench regress) ------------------------------------------------


class Claim(BaseModel):
    """A finding the suite should reproduce: `variant`'s `metric` is below (or above) `than`'s."""

    model_config = STRICT
    text: str | None = None  # the finding in words; by default made from the fields below
    metric: str  # a result column at the final step: "fid/lenet-digits", "clip_saturation", …
    dataset: str | None = None  # default: the suite's first dataset
    variant: str  # a variant entry label of the suite
    op: Literal["<", ">"]  # "<": variant's values are below than's; ">": above
    than: str | float  # another entry label, or a number
    # One-sided Welch t-test over seeds (a one-sample t-test against a number): the claim holds
    # when p < alpha.
    alpha: Annotated[float, Field(gt=0, le=0.5)] = 0.05

    def concerns_only(self, labels: Collection[str]) -> bool:
        """Whether every entry the claim names is among `labels`."""
        return self.variant in labels and (not isinstance(self.than, str) or self.than in labels)

    def describe(self) -> str:
        if self.text:
            return self.text
        word = "below" if self.op == "<" else "above"
        return f"{self.variant}'s {self.metric} is {word} {self.than}" + (
            "'s" if isinstance(self.than, str) else ""
        )


class Report(BaseModel):
    """What summary.md adds to its ranking and its speed-and-memory table."""

    model_config = STRICT
    # Metrics (by name) each of whose columns gets a test of every pair of variants, besides the
    # suite's first (primary) metric, which always gets one.
    tested: list[str] = []
    # An entry label: each variant's training cost (seconds per generator step, peak memory) is
    # also stated as a ratio to this entry's.
    cost_reference: str | None = None
    # Entry labels of an ablation, in order, each adding one ingredient to the one before it
    # (StyleGAN's configs A-F): the summary tests each against the one before it.
    ablation: list[str] = []
    # The published values of the suite's first metric for those entries, and where they are from.
    ablation_reference: list[float] = []
    ablation_reference_source: str = ""


class Regress(BaseModel):
    """How `bench baseline` turns seed-to-seed spread into the bands `bench regress` checks."""

    model_config = STRICT
    # Band: baseline mean ± k × (standard deviation over the baseline's seeds).
    k: Annotated[float, Field(gt=0)] = 3.0
    # Never narrower than this fraction of |mean| on each side (for values seeds barely move).
    min_rel_width: Annotated[float, Field(ge=0)] = 0.02
    # ... nor narrower than this, per metric column or its prefix ("recall", "classes_covered"):
    # for values every seed shares (a recall of 0), whose spread five seeds cannot measure.
    min_abs_width: dict[str, Annotated[float, Field(ge=0)]] = {}
    min_seeds: Annotated[int, Field(ge=2)] = 5  # a baseline needs at least this many seeds


class SuiteSpec(BaseModel):
    """The schema of a suite file (after its profile and overrides are merged in)."""

    model_config = STRICT
    description: Annotated[str, Field(min_length=1)]
    # What the suite benchmarks (bench/tasks): "generation" (noise → sample), "paired_translation"
    # (source image → target image), "unpaired_translation" or "super_resolution" (LR → HR image).
    # Variants, datasets and metrics must fit.
    task: str = "generation"
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    datasets: Annotated[list[str], Field(min_length=1)]
    metrics: list[str]
    budget: Budget
    eval: Eval
    train: Train = Train()
    checkpoint: Checkpoint = Checkpoint()
    tracking: Tracking = Tracking()
    ray: RayCluster = RayCluster()  # used only with train.executor = "ray"
    # Variant config fields applied to every entry (each entry may still override them).
    variant_defaults: dict[str, Any] = {}
    # label → {variant = "name" (default: the label), datasets = [...] (default: the suite's), fields}
    variants: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]
    tuning: Tuning | None = None  # hyperparameter search (bench tune); ignored by bench run
    claims: list[Claim] = []  # findings checked in summary.md and by bench regress
    regress: Regress = Regress()  # tolerance bands of bench baseline / bench regress
    report: Report = Report()  # extra tests and cost ratios in summary.md


@dataclass(frozen=True)
class Entry:
    """One variant configuration of a suite, trained on each of its datasets under each seed."""

    label: str
    variant: str
    config: VariantConfig
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One (entry, dataset, seed) training run."""

    entry: Entry
    dataset: str
    seed: int

    @property
    def cell_id(self) -> str:
        return f"{self.entry.label}__{self.dataset}__s{self.seed}"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    profile: str
    spec: SuiteSpec
    entries: tuple[Entry, ...]

    def cells(self) -> list[Cell]:
        return [
            Cell(entry, dataset, seed)
            for entry in self.entries
            for dataset in entry.datasets
            for seed in self.spec.seeds
        ]

    def resolved(self) -> dict[str, Any]:
        """The fully resolved configuration, every default filled in (written next to the results)."""
        spec = self.spec.model_dump(exclude={"variant_defaults", "variants"})
        spec["variants"] = {
            e.label: {"variant": e.variant, "datasets": list(e.datasets), **e.config.model_dump()}
            for e in self.entries
        }
        return {
            "suite": self.name, "profile": self.profile, "suite_file": str(self.path.resolve()), **spec
        }  # fmt: skip


# Keys of a resolved configuration that cannot change a result, so a resume may differ in them.
RESULT_NEUTRAL = {
    "description",
    "train.workers",
    "train.executor",
    "train.gpus_per_cell",
    "train.cpus_per_cell",
    "train.retries",
    "ray.address",
    "report.tested",
    "report.cost_reference",
    "report.ablation",
    "report.ablation_reference",
    "report.ablation_reference_source",
    "tracking.enabled",
    "tracking.uri",
    "tracking.log_weights",
}
RUN_KEYS = ("suite", "profile", "suite_file", "device", "overrides", "with", "entries")


def suite_from_resolved(resolved: dict[str, Any], where: str) -> Suite:
    """Rebuild a Suite from the resolved configuration a run folder stores (config.json)."""
    load_all()
    spec = _validate(SuiteSpec, {k: v for k, v in resolved.items() if k not in RUN_KEYS}, where)
    return Suite(
        name=resolved["suite"],
        path=Path(resolved["suite_file"]),
        profile=resolved["profile"],
        spec=spec,
        entries=_check_spec(spec, where),
    )


def result_changes(before: Suite, after: Suite) -> list[str]:
    """Dotted keys whose values differ between two suites, except those that cannot alter results."""
    a, b = flatten(before.resolved()), flatten(after.resolved())
    skip = RESULT_NEUTRAL | {"suite_file"}
    return sorted(
        k
        for k in a.keys() | b.keys()
        if k not in skip
        and k.split(".")[0] not in ("tuning", "claims", "regress")
        and a.get(k) != b.get(k)
    )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as one level of dotted keys."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- Finding suite files -------------------------------------------------------------------------


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ./suites, then the suites/ folder beside the harness."""
    dirs: list[Path] = []
    for d in (Path.cwd() / "suites", REPO_ROOT / "suites"):
        if d.is_dir() and d.resolve() not in dirs:
            dirs.append(d.resolve())
    return dirs


def shown(path: Path) -> str:
    """`path` relative to the current directory when it is below it, for messages."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(suite_dirs()):
        found.update({p.stem: p for p in sorted(d.glob("*.toml"))})
    return dict(sorted(found.items()))


def find_suite(name: str) -> Path:
    """A suite name (`wgan_vs_gp`) or a path to a .toml file."""
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"suite file '{name}' does not exist")
        return path
    suites = available_suites()
    if name not in suites:
        known = ", ".join(suites) or "(none found)"
        raise UsageError(
            f"unknown suite '{name}'; known suites: {known} (or give a path to a .toml file)"
        )
    return suites[name]


# --- Overrides -----------------------------------------------------------------------------------


def parse_value(key: str, text: str) -> Any:
    """A command-line value as a TOML literal (`5`, `0.1`, `true`, `[1, 2]`), else as a string."""
    if key == "seeds" and not text.startswith("["):
        return [parse_value("", item.strip()) for item in text.split(",")]  # seeds=0,1,2
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(
                f"command-line override '{dotted}': '{'.'.join(parents[: i + 1])}' is a value, "
                "not a table"
            )
        node = child
    node[leaf] = value


def _deep_merge(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- Validation ----------------------------------------------------------------------------------


def _describe_error(err: dict[str, Any], model: type[BaseModel]) -> tuple[str, str]:
    """(dotted key, what is wrong and what is allowed) for one pydantic error."""
    loc = [str(p) for p in err["loc"]]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return key, f"unknown key{hint}"
    if err["type"] == "missing":
        return key, "required key is missing"
    got = err.get("input")
    return key, f"{err['msg'].lower()} (got {got!r})"


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _validate(model: type[BaseModel], data: Any, where: str, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(e, model) for e in exc.errors()]
        lines = [f"{where}: key '{prefix}{key}': {msg}" for key, msg in problems]
        raise UsageError("\n".join(lines)) from None


def _check_names(names: list[str], registry: Any, where: str, key: str) -> None:
    for i, name in enumerate(names):
        try:
            registry.get(name)
        except RegistryError as exc:
            raise UsageError(f"{where}: key '{key}[{i}]': {exc}") from None
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{where}: key '{key}': listed more than once: {', '.join(dupes)}")


def _resolve_entries(spec: SuiteSpec, where: str) -> tuple[Entry, ...]:
    entries = []
    for label, raw in spec.variants.items():
        raw = dict(raw)
        variant = raw.pop("variant", label)
        if not isinstance(variant, str):
            raise UsageError(
                f"{where}: key 'variants.{label}.variant': must be a variant name string"
            )
        try:
            cls = VARIANTS.get(variant)
        except RegistryError as exc:
            raise UsageError(f"{where}: key 'variants.{label}.variant': {exc}") from None
        datasets = raw.pop("datasets", spec.datasets)
        if not isinstance(datasets, list) or not datasets:
            raise UsageError(
                f"{where}: key 'variants.{label}.datasets': must be a non-empty list of dataset names"
            )
        _check_names(datasets, DATASETS, where, f"variants.{label}.datasets")
        for key in spec.variant_defaults:
            if key not in cls.Config.model_fields:
                raise UsageError(
                    f"{where}: key 'variant_defaults.{key}': not a field of variant '{variant}' "
                    f"(entry '{label}'); its fields: {', '.join(cls.Config.model_fields)}"
                )
        config = _validate(
            cls.Config, {**spec.variant_defaults, **raw}, where, prefix=f"variants.{label}."
        )
        entries.append(Entry(label, variant, config, tuple(datasets)))
    return tuple(entries)


def objective_columns(spec: SuiteSpec) -> list[str]:
    """The result columns the suite's metrics fill on its tuning dataset."""
    dataset = spec.tuning.dataset or spec.datasets[0]
    return TASKS.get(spec.task)().result_columns(spec.metrics, spec.eval.backbones, dataset)


def objective_column(spec: SuiteSpec) -> str:
    """The result column the tuning objective names (checked when the suite loads)."""
    from bench.metrics import find_column

    column = find_column(spec.tuning.objective, objective_columns(spec))
    assert column is not None, "the objective is checked when the suite loads"
    return column


def _check_tuning(spec: SuiteSpec, entries: tuple[Entry, ...], where: str) -> None:
    """The objective names a column the suite fills that has a direction, the dataset is a suite
    dataset, every range a valid value."""
    from bench.metrics import column_direction, find_column

    tuning = spec.tuning
    if tuning is None:
        return
    dataset = tuning.dataset or spec.datasets[0]
    if tuning.dataset is not None and tuning.dataset not in spec.datasets:
        raise UsageError(
            f"{where}: key 'tuning.dataset': '{tuning.dataset}' is not one of the suite's "
            f"datasets: {', '.join(spec.datasets)}"
        )
    columns = objective_columns(spec)
    column = find_column(tuning.objective, columns)
    if column is None:
        raise UsageError(
            f"{where}: key 'tuning.objective': '{tuning.objective}' is neither a metric nor a "
            f"column that this suite's metrics and backbones fill on '{dataset}'; they fill: "
            f"{', '.join(columns)}"
        )
    if column_direction(column) is None:
        raise UsageError(
            f"{where}: key 'tuning.objective': '{column}' is a spread, not a score; neither higher "
            f"nor lower is better. Columns with a direction: "
            f"{', '.join(c for c in columns if column_direction(c) is not None)}"
        )
    by_label = {e.label: e for e in entries}
    for label, space in tuning.space.items():
        key = f"tuning.space.{label}"
        entry = _entry(by_label, label, key, where)
        if dataset not in entry.datasets:
            raise UsageError(
                f"{where}: key '{key}': entry '{label}' does not train on the tuning dataset "
                f"'{dataset}' (its datasets: {', '.join(entry.datasets)}); set tuning.dataset"
            )
        if not space:
            raise UsageError(f"{where}: key '{key}': empty; name at least one field to search")
        fields = type(entry.config).model_fields
        for name, param in space.items():
            if name not in fields:
                raise UsageError(
                    f"{where}: key '{key}.{name}': not a field of variant '{entry.variant}'; "
                    f"its fields: {', '.join(fields)}"
                )
            if isinstance(param, FloatParam | IntParam):
                if param.low >= param.high:
                    raise UsageError(
                        f"{where}: key '{key}.{name}': low must be below high "
                        f"(got low={param.low}, high={param.high})"
                    )
                if param.log and param.low <= 0:
                    raise UsageError(
                        f"{where}: key '{key}.{name}': log = true needs low > 0 (got {param.low})"
                    )
                values = [param.low, param.high]
            else:
                values = param.choices
            # Every end of a range and every choice must be a value the field itself accepts.
            for value in values:
                _validate(
                    type(entry.config), {**entry.config.model_dump(), name: value}, where,
                    prefix=f"{key}.{name} → variants.{label}.",
                )  # fmt: skip


def _entry(by_label: dict[str, Entry], label: str, key: str, where: str) -> Entry:
    """The variant entry `label` that the suite key `key` names; refused when there is none."""
    if label not in by_label:
        raise UsageError(
            f"{where}: key '{key}': no variant entry '{label}'; entries: {', '.join(by_label)}"
        )
    return by_label[label]


def _check_claims(spec: SuiteSpec, entries: tuple[Entry, ...], where: str) -> None:
    """Each claim names entries of the suite, a dataset both train on, and a column the run fills."""
    from bench.metrics.images import ImageMetric
    from bench.results import DIAGNOSTIC_COLUMNS, PERFORMANCE_COLUMNS

    by_label = {e.label: e for e in entries}
    prefixes = {p for m in spec.metrics if isinstance(METRICS.get(m), ImageMetric)
                for p, _ in METRICS.get(m).columns}  # fmt: skip
    plain = [
        m for m in spec.metrics if m not in prefixes and not isinstance(METRICS.get(m), ImageMetric)
    ]
    for i, claim in enumerate(spec.claims):
        key = f"claims[{i}]"
        dataset = claim.dataset or spec.datasets[0]
        labels = [claim.variant] + ([claim.than] if isinstance(claim.than, str) else [])
        for field, label in zip(("variant", "than"), labels, strict=False):
            entry = _entry(by_label, label, f"{key}.{field}", where)
            if dataset not in entry.datasets:
                raise UsageError(f"{where}: key '{key}.dataset': entry '{label}' does not train on "
                                 f"'{dataset}' (its datasets: {', '.join(entry.datasets)})")  # fmt: skip
        head, _, tail = claim.metric.partition("/")
        known = (claim.metric in plain or claim.metric in DIAGNOSTIC_COLUMNS
                 or claim.metric in PERFORMANCE_COLUMNS or (head in prefixes and tail)
                 or (head in plain and tail) or (head in DIAGNOSTIC_COLUMNS and tail))  # fmt: skip
        if not known:
            allowed = [*plain, *(f"{p}/<backbone>" for p in sorted(prefixes)),
                       *DIAGNOSTIC_COLUMNS, *PERFORMANCE_COLUMNS]  # fmt: skip
            raise UsageError(f"{where}: key '{key}.metric': '{claim.metric}' is not a column this "
                             f"suite fills; columns: {', '.join(allowed)}")  # fmt: skip


def _check_spec(spec: SuiteSpec, where: str) -> tuple[Entry, ...]:
    from bench.datasets.images import IMAGE_DATASETS, is_image_dataset
    from bench.metrics.images import ImageMetric
    from bench.metrics.likelihood import ModelMetric

    try:
        TASKS.get(spec.task)
    except RegistryError as exc:
        raise UsageError(f"{where}: key 'task': {exc}") from None
    _check_names(spec.datasets, DATASETS, where, "datasets")
    _check_names(spec.metrics, METRICS, where, "metrics")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise UsageError(f"{where}: key 'seeds': each seed may appear only once (got {spec.seeds})")
    entries = _resolve_entries(spec, where)
    image_metrics = [m for m in spec.metrics if isinstance(METRICS.get(m), ImageMetric)]
    not_images = sorted({d for e in entries for d in e.datasets if not is_image_dataset(d)})
    likelihood = [m for m in spec.metrics if isinstance(METRICS.get(m), ModelMetric)]
    if likelihood and not_images:
        raise UsageError(
            f"{where}: key 'metrics': {', '.join(likelihood)} score held-out images, but "
            f"{', '.join(not_images)} are not image datasets with a held-out split (image "
            f"datasets: {', '.join(IMAGE_DATASETS)}); remove those metrics or datasets"
        )
    if image_metrics and not_images:
        raise UsageError(
            f"{where}: key 'metrics': {', '.join(image_metrics)} measure images, but "
            f"{', '.join(not_images)} are not image datasets (image datasets: "
            f"{', '.join(IMAGE_DATASETS)}); remove those metrics or datasets"
        )
    _check_task_fit(spec, entries, where)
    weights = spec.eval.lpips_weights
    if "lpips_alex" in spec.metrics and weights and not Path(weights).is_file():
        raise UsageError(f"{where}: key 'eval.lpips_weights': no file at {weights}; give the path "
                         "of torchvision's ImageNet AlexNet state dict, or leave it unset")  # fmt: skip
    _check_unlabelled(spec, entries, image_metrics, where)
    _check_tuning(spec, entries, where)
    _check_claims(spec, entries, where)
    _check_report(spec, entries, where)
    return entries


def _check_report(spec: SuiteSpec, entries: tuple[Entry, ...], where: str) -> None:
    unknown = [m for m in spec.report.tested if m not in spec.metrics]
    if unknown:
        raise UsageError(f"{where}: key 'report.tested': {', '.join(unknown)} not among the "
                         f"suite's metrics ({', '.join(spec.metrics)})")  # fmt: skip
    reference = spec.report.cost_reference
    if reference is not None:
        _entry({e.label: e for e in entries}, reference, "report.cost_reference", where)
    for i, label in enumerate(spec.report.ablation):
        _entry({e.label: e for e in entries}, label, f"report.ablation[{i}]", where)
    published = spec.report.ablation_reference
    if published and len(published) != len(spec.report.ablation):
        raise UsageError(f"{where}: key 'report.ablation_reference': {len(published)} values for "
                         f"{len(spec.report.ablation)} ablation entries; give one per entry")  # fmt: skip


def _check_unlabelled(
    spec: SuiteSpec, entries: tuple[Entry, ...], image_metrics: list[str], where: str
) -> None:
    """Data without classes (a folder of the user's images) cannot train a domain classifier or
    score a label metric."""
    from bench.datasets.images import LABEL_METRICS, has_domain_classifier

    unlabelled = sorted({d for e in entries for d in e.datasets
                         if getattr(DATASETS.get(d), "labelled", True) is False})  # fmt: skip
    if not unlabelled:
        return
    named = ", ".join(unlabelled)
    label_metrics = [m for m in spec.metrics if m in LABEL_METRICS]
    if label_metrics:
        raise UsageError(
            f"{where}: key 'metrics': {', '.join(label_metrics)} need the data's classes, and "
            f"{named} have none; remove those metrics for these datasets"
        )
    no_classifier = [d for d in unlabelled if not has_domain_classifier(d)]
    named = ", ".join(no_classifier)
    for entry in entries:  # SRGAN's offline content loss is the domain classifier's feature map
        if getattr(entry.config, "content_loss", "") == "domain" and set(entry.datasets) & set(
            no_classifier
        ):
            raise UsageError(
                f"{where}: entry '{entry.label}': content_loss = \"domain\" is a feature map of "
                f"a classifier trained on the data's classes, and {named} have none; set "
                'content_loss = "mse", or "vgg54" with vgg_weights'
            )
    if image_metrics and "domain" in spec.eval.backbones and no_classifier:
        raise UsageError(
            f"{where}: key 'eval.backbones': 'domain' is a classifier trained on the data's "
            f'classes, and {named} have none; use backbones = ["inception"] (with '
            "eval.inception_weights offline) or drop the feature metrics "
            f"({', '.join(image_metrics)})"
        )


def _check_task_fit(spec: SuiteSpec, entries: tuple[Entry, ...], where: str) -> None:
    """Every variant can do what the suite's task needs, every dataset and metric serves it."""
    from bench.datasets.base import dataset_kind

    task = TASKS.get(spec.task)
    fitting = [v for v in VARIANTS.names() if task.needs in VARIANTS.get(v).capabilities]
    for entry in entries:
        caps = VARIANTS.get(entry.variant).capabilities
        if task.needs not in caps:
            raise UsageError(
                f"{where}: key 'variants.{entry.label}': variant '{entry.variant}' does not fit "
                f"task '{task.name}', which needs the capability '{task.needs}' (it has: "
                f"{', '.join(sorted(caps))}); variants for this task: {', '.join(fitting)}"
            )
    kinds = [d for d in DATASETS.names() if dataset_kind(d) == task.data_kind]
    for name in sorted({d for e in entries for d in e.datasets}):
        if dataset_kind(name) != task.data_kind:
            raise UsageError(
                f"{where}: key 'datasets': '{name}' holds {dataset_kind(name)} data, but task "
                f"'{task.name}' needs {task.data_kind} data; datasets for this task: "
                f"{', '.join(kinds)}"
            )
    for i, name in enumerate(spec.metrics):
        tasks = METRICS.get(name).tasks
        if task.name not in tasks:
            allowed = [m for m in METRICS.names() if task.name in METRICS.get(m).tasks]
            raise UsageError(
                f"{where}: key 'metrics[{i}]': '{name}' applies to task {', '.join(tasks)}, not to "
                f"'{task.name}'; metrics for this task: {', '.join(allowed)}"
            )


def load_suite(
    name_or_path: str,
    profile: str | None = None,
    overrides: dict[str, str] | None = None,
    layers: list[tuple[str, dict[str, Any]]] | None = None,
) -> Suite:
    """Load, merge the profile, override files and overrides into, and validate a suite.

    `layers` are (file name, table) deltas such as tuned parameters (`bench run with=FILE`), merged
    after the profile and before the key=value overrides. Raises UsageError.
    """
    load_all()
    path = find_suite(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{shown(path)}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{shown(path)}: cannot be read: {exc.strerror}") from None

    where_file = shown(path)
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise UsageError(
            f"{where_file}: key 'profiles': must be a table of tables, e.g. [profiles.smoke]"
        )
    if DEFAULT_PROFILE in profiles:
        raise UsageError(
            f"{where_file}: key 'profiles.{DEFAULT_PROFILE}': reserved; the file's top level is the default"
        )

    # Every profile must be valid, whichever is run, so a broken one is caught when the file loads.
    resolved: dict[str, tuple[SuiteSpec, tuple[Entry, ...]]] = {}
    for pname in [DEFAULT_PROFILE, *profiles]:
        merged = raw if pname == DEFAULT_PROFILE else _deep_merge(raw, profiles[pname])
        if "profiles" in merged:
            raise UsageError(f"{where_file}: key 'profiles.{pname}.profiles': profiles cannot nest")
        where = where_file if pname == DEFAULT_PROFILE else f"{where_file} (profile '{pname}')"
        spec = _validate(SuiteSpec, merged, where)
        resolved[pname] = (spec, _check_spec(spec, where))

    profile = profile or DEFAULT_PROFILE
    if profile not in resolved:
        raise UsageError(
            f"{where_file}: unknown profile '{profile}'; known profiles: {', '.join(resolved)}"
        )
    spec, entries = resolved[profile]

    if overrides or layers:
        merged = raw if profile == DEFAULT_PROFILE else _deep_merge(raw, profiles[profile])
        merged = copy.deepcopy(merged)
        for _, table in layers or []:
            merged = _deep_merge(merged, table)
        for key, text in (overrides or {}).items():
            _set_path(merged, key, parse_value(key, text))
        given = " ".join(
            [f"with={name}" for name, _ in layers or []]
            + [f"{k}={v}" for k, v in (overrides or {}).items()]
        )
        where = f"command-line overrides ({given}) on {where_file}"
        spec = _validate(SuiteSpec, merged, where)
        entries = _check_spec(spec, where)

    return Suite(name=path.stem, path=path, profile=profile, spec=spec, entries=entries)


def select_entries(suite: Suite, labels: list[str]) -> Suite:
    """`suite` with only the variant entries `labels` (and the claims that involve only them)."""
    known = [e.label for e in suite.entries]
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise UsageError(
            f"entries={','.join(labels)}: no entry {', '.join(unknown)} in suite '{suite.name}'; "
            f"its entries: {', '.join(known)}"
        )
    claims = [c for c in suite.spec.claims if c.concerns_only(labels)]
    spec = suite.spec.model_copy(update={
        "variants": {k: v for k, v in suite.spec.variants.items() if k in labels}, "claims": claims,
        "tuning": None,  # its search spaces may name the entries left out; bench run ignores it
        "report": suite.spec.report.model_copy(update={"cost_reference": (
            suite.spec.report.cost_reference
            if suite.spec.report.cost_reference in labels else None)}),
    })  # fmt: skip
    entries = tuple(e for e in suite.entries if e.label in labels)
    return Suite(suite.name, suite.path, suite.profile, spec, entries)


def read_override_file(path: str) -> tuple[str, dict[str, Any]]:
    """A TOML file of suite deltas (e.g. tuned parameters), as (its name, its table)."""
    file = Path(path)
    try:
        return shown(file), tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"with={path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"with={path}: cannot be read: {exc.strerror}") from None
