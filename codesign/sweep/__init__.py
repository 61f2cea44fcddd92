"""What-if sweeps: one API that runs a study on a local process pool or a Dask cluster.

A sweep study (YAML, validated by `SweepStudy`) is the Cartesian product of its axes:
profiles × profile overrides × models × quant formats × batch × prompt_len × gen_len
(× serving qps). Configurations sharing (profile variant, model, quant format) form a
*group*; a group's batch × prompt_len × gen_len grid is evaluated with one broadcast
call of the cost model (`simulator.cost`). Groups are packed, and large groups split,
into *chunks* of at most `chunk_size` configurations; a chunk is one task.

Execution (`run_sweep`): chunks go to an executor (`LocalExecutor`, a process pool, by
default; `DaskExecutor` for a `dask.distributed` scheduler or a LocalCluster). A task
that raises is submitted once more (`retries`); if it fails again it is reported with
its configurations (`ChunkFailure`) while the other chunks complete. With an output
path, every finished chunk is written at once to `<out>.parts/<chunk key>.parquet`
(atomically, by the driver, so workers need no shared file system). A chunk key is a
SHA-256 of everything that determines its rows (precsim version, the profile document
after overrides, model, format, axis values, serving settings), so a rerun of an
interrupted or partly failed sweep skips finished chunks, and a changed study or
profile recomputes exactly what changed. When every chunk has finished, the rows,
sorted by `config_id` (the position in the Cartesian product), are written to
`<out>` atomically and the parts folder is removed.

Modules: `schema` (the study file), `chunks` (groups, pieces, chunk keys), `workers`
(evaluating a chunk), `executors` (local pool, Dask: imported only when used),
`driver` (`run_sweep`: retries, checkpoints, gathering).
"""
from precsim.codesign.sweep.chunks import Chunk, Group, Piece, plan_chunks
from precsim.codesign.sweep.driver import (PARTS_SUFFIX, ChunkFailure, SweepResult,
                                           parts_dir_for, run_sweep)
from precsim.codesign.sweep.executors import DaskExecutor, LocalExecutor, make_executor
from precsim.codesign.sweep.schema import (COST_CHUNK, SERVING_CHUNK, OverrideValue,
                                           ServingAxis, SweepStudy, load_sweep_study,
                                           study_source, sweep_study_from_mapping)
from precsim.codesign.sweep.workers import SERVING_METRICS, evaluate_chunk

__all__ = ["COST_CHUNK", "PARTS_SUFFIX", "SERVING_CHUNK", "SERVING_METRICS", "Chunk",
           "ChunkFailure", "DaskExecutor", "Group", "LocalExecutor", "OverrideValue",
           "Piece", "ServingAxis", "SweepResult", "SweepStudy", "evaluate_chunk",
           "load_sweep_study", "make_executor", "parts_dir_for", "plan_chunks", "run_sweep",
           "study_source", "sweep_study_from_mapping"]
