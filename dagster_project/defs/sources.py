"""What the graph is computed from but does not compute: the study's config sections and the
checkpoint's files, as observable source assets whose data versions say when they changed (see
:mod:`dagster_project.versions`). Every run of the main job observes them first, so its
materializations record what they were computed from; in the UI, "Observe sources" updates them
by hand. `nwh run` and the checkpoint sensor record the same versions without a run
(:func:`record_versions`) before they ask what is stale."""

import dagster as dg
# the tag an observation carries its data version in (what `observe` writes); not re-exported
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from dagster_project.partitions import checkpoints_partitions, parse_partition_key
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from dagster_project.versions import CHECKPOINT_KEY, STUDY_SECTIONS, config_key, section_version
from extract.checkpoints import checkpoint_fingerprint, find_checkpoints


def _config_source(section: str) -> dg.AssetsDefinition:
    @dg.observable_source_asset(key=config_key(section), group_name="sources",
                                description=f"The study config's `{section}` section; its data "
                                            "version is a hash of the section and of the files "
                                            "it names, so the assets that read it are stale "
                                            "when either changes.")
    def config_section(nwh: NwhResource) -> dg.DataVersion:
        return section_version(getattr(nwh.study(), section))

    return config_section


def checkpoint_version(study: StudyConfig, key: str) -> dg.DataVersion:
    """The data version of partition `key`'s checkpoint: the fingerprint of its files (names,
    sizes, modification times); "no checkpoint" when the study has none of that name."""
    model, name = parse_partition_key(key)
    folders = dict(find_checkpoints(study.checkpoints)) if study.needs_model else {}
    folder = folders.get(name) if model == study.model else None
    return dg.DataVersion(checkpoint_fingerprint(folder) if folder else "no checkpoint")


@dg.observable_source_asset(key=CHECKPOINT_KEY, partitions_def=checkpoints_partitions,
                            group_name="sources",
                            description="The checkpoint's files; the data version of a partition "
                                        "is their fingerprint (names, sizes, modification times), "
                                        "so a checkpoint rewritten in place makes every table "
                                        "computed from it stale.")
def checkpoint(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.DataVersionsByPartition:
    keys = [context.partition_key] if context.has_partition_key else \
        context.instance.get_dynamic_partitions(checkpoints_partitions.name)
    return dg.DataVersionsByPartition({key: checkpoint_version(nwh.study(), key) for key in keys})


SECTIONS = sorted({section for sections in STUDY_SECTIONS.values() for section in sections})
assets = [*(_config_source(section) for section in SECTIONS), checkpoint]


def record_versions(instance: dg.DagsterInstance, study: StudyConfig, key: str) -> None:
    """Record, as runless observations, the current data version of every config section and of
    partition `key`'s checkpoint: what observing the sources in a run records, without a run, so
    that `nwh run` and the sensor can ask which assets are stale before they launch one."""
    versions = {config_key(section): section_version(getattr(study, section))
                for section in SECTIONS}
    for asset_key, version in versions.items():
        instance.report_runless_asset_event(
            dg.AssetObservation(asset_key, tags={DATA_VERSION_TAG: version.value}))
    instance.report_runless_asset_event(dg.AssetObservation(
        CHECKPOINT_KEY, partition=key, tags={DATA_VERSION_TAG: checkpoint_version(study, key).value}))
