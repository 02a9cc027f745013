"""Experiment statistics from per-variant sufficient statistics (no rows, no database, no Flask).

Start with :func:`analyze_experiment` (or :func:`per_language`); the building blocks are public for the
dashboard, the simulator and the tests. See ``experiments/README.md`` for the methods and references.
"""

from experiments.stats.analysis import (
    STANDARD_METRICS,
    AnalysisSettings,
    CupedSummary,
    ExperimentAnalysis,
    Lift,
    MetricComparison,
    MetricSpec,
    MetricSummary,
    UnitAggregates,
    VariantData,
    VariantSummary,
    analyze_experiment,
    per_language,
)
from experiments.stats.bayesian import BayesianResult, GaussianPrior, bayesian_test
from experiments.stats.corrections import holm_adjust
from experiments.stats.cuped import RegressionAdjustedStats, adjust_pair
from experiments.stats.frequentist import (
    LiftEstimate,
    UntestableError,
    two_proportion_z_arrays,
    two_proportion_z_test,
    welch_arrays,
    welch_test,
)
from experiments.stats.power import (
    SampleSize,
    baseline_moments,
    minimum_detectable_effect,
    power_two_sided,
    required_sample_size,
    required_sample_size_proportion,
)
from experiments.stats.pre_period import PrePeriodAggregates, adjusted_metrics
from experiments.stats.sequential import DEFAULT_TUNING, sequential_arrays, sequential_test
from experiments.stats.srm import SRM_P_THRESHOLD, SrmResult, srm_check
from experiments.stats.sufficient import (
    MeanStats,
    MetricStats,
    ProportionStats,
    RatioStats,
    mean_moments,
    proportion_moments,
    ratio_moments,
)

__all__ = [
    "DEFAULT_TUNING",
    "SRM_P_THRESHOLD",
    "STANDARD_METRICS",
    "AnalysisSettings",
    "BayesianResult",
    "CupedSummary",
    "GaussianPrior",
    "ExperimentAnalysis",
    "Lift",
    "LiftEstimate",
    "MeanStats",
    "MetricComparison",
    "MetricSpec",
    "MetricStats",
    "MetricSummary",
    "PrePeriodAggregates",
    "ProportionStats",
    "RatioStats",
    "RegressionAdjustedStats",
    "SampleSize",
    "SrmResult",
    "UnitAggregates",
    "UntestableError",
    "VariantData",
    "VariantSummary",
    "adjust_pair",
    "adjusted_metrics",
    "analyze_experiment",
    "baseline_moments",
    "bayesian_test",
    "holm_adjust",
    "mean_moments",
    "minimum_detectable_effect",
    "per_language",
    "power_two_sided",
    "proportion_moments",
    "ratio_moments",
    "required_sample_size",
    "required_sample_size_proportion",
    "sequential_arrays",
    "sequential_test",
    "srm_check",
    "two_proportion_z_arrays",
    "two_proportion_z_test",
    "welch_arrays",
    "welch_test",
]
