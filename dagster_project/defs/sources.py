"""What the graph is computed from but does not compute: the study's config sections and the
checkpoint's files, as observable source assets whose data versions say when they changed (see
:mod:`dagster_project.versions`). `nwh run` observes them before it decides what is stale; every
run of the main job observes them first, so its materializations record what they were computed
from; in the UI, "Observe sources" updates them by hand."""

import dagster as dg

from dagster_project.partitions import checkpoints_partitions, parse_partition_key
from dagster_project.resources import NwhResource
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


@dg.observable_source_asset(key=CHECKPOINT_KEY, partitions_def=checkpoints_partitions,
                            group_name="sources",
                            description="The checkpoint's files; the data version of a partition "
                                        "is their fingerprint (names, sizes, modification times), "
                                        "so a checkpoint rewritten in place makes every table "
                                        "computed from it stale.")
def checkpoint(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.DataVersionsByPartition:
    study = nwh.study()
    folders = dict(find_checkpoints(study.checkpoints)) if study.needs_model else {}
    keys = [context.partition_key] if context.has_partition_key else \
        context.instance.get_dynamic_partitions(checkpoints_partitions.name)
    versions = {}
    for key in keys:
        model, name = parse_partition_key(key)
        folder = folders.get(name) if model == study.model else None
        versions[key] = dg.DataVersion(checkpoint_fingerprint(folder) if folder else "no checkpoint")
    return dg.DataVersionsByPartition(versions)


SECTIONS = sorted({section for sections in STUDY_SECTIONS.values() for section in sections})
assets = [*(_config_source(section) for section in SECTIONS), checkpoint]
