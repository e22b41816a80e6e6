"""What the book's pages show, read from result records; nothing here trains.

The pages call `lib.report` (`from lib import report`); each name below is defined once, in
the submodule that owns its idea, and gathered here so a page imports one module:
- `choice`: which profile a page shows (one rule);
- `reading`: records, predictions, details and metrics logs, captions;
- `formatting`: percentages, spreads over seeds, markdown tables;
- `results`: every configuration beside the published figures;
- `run_pages`: the page of one stored run;
- `verdicts`: the findings sentences, derived from the numbers by `stats`' rule;
- `variant_tables`: the research variants against vanilla;
- `people`: the searchable table of every dev person.
Further modules are imported by name: `stats`, `figures`, `analysis` (the essays),
`recipes` (the recipes chapter).
"""

from lib.report.choice import (  # noqa: F401
    answers_exercise,
    chapter_profile,
    choose,
    essay_profile,
    has_research_variant,
    has_runs,
    pending_runs,
    people_profile,
    profiles_with_records,
    variant_profiles,
)
from lib.report.formatting import (  # noqa: F401
    MIN_SEEDS_FOR_SPREAD,
    format_mean_std,
    format_stat,
    markdown_table,
    mean_std,
    page_table,
    percent,
)
from lib.report.people import (  # noqa: F401
    PEOPLE_LEGEND,
    people_table,
    searchable_html,
)
from lib.report.reading import (  # noqa: F401
    caption,
    details,
    dev_outcomes,
    is_whole_data,
    load_data,
    metrics_log,
    prediction_rows,
    record_world,
    result_file,
    runs_of,
    short_caption,
    vanilla_runs,
    world_description,
    world_label,
)
from lib.report.results import (  # noqa: F401
    CONFIGURATIONS,
    PROBES,
    PUBLISHED,
    PUBLISHED_COLUMNS,
    PUBLISHED_SOURCES,
    PUBLISHED_VALUES,
    SHORT_CONFIGURATIONS,
    accuracy_points,
    accuracy_stats,
    answer_line,
    dev_accuracies,
    part2_summary,
    probe_rates,
    results_table,
    side_by_side,
    variant_answer_line,
    variant_comparison,
)
from lib.report.run_pages import (  # noqa: F401
    accuracy_line,
    headline,
    predicted_places,
    pretraining_epoch_seconds,
    pretraining_times,
    probe_examples,
    probe_table,
    provenance_line,
    run_links,
    sample_predictions,
    snapshot_table,
    snapshot_view,
    stored_runs,
)
from lib.report.variant_tables import (  # noqa: F401
    seed_spread,
    variant_findings,
    variant_seed_rates,
    variant_table,
)
from lib.report.verdicts import (  # noqa: F401
    answers_from_train,
    findings,
    london_counts,
    paired_text,
    probe_asked,
    probe_outcomes,
    rate_text,
    runs_table,
    snapshot_growth,
    stored_vs_answered,
)
