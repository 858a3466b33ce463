"""What every mode shares to run: the run directory's files (`files`: local paths and gs://
buckets), checkpoints (`checkpoints`, with the restore every inference mode starts from),
figures (`plotting`), TensorBoard summaries (`summaries`), multi-process safety
(`multihost`), the command line's user errors (`cli`), a profiler trace of a few training
steps (`profiling`), and conversion of runs to and from the reference implementation
(`conversion`, behind `python -m fdrl_jax.convert`)."""
