"""The Composer engine's builders: one module per executor, which runs it with Google operators.

An executor of the catalogue (`levelflow.executors.CATALOGUE`) names its module here
(`Executor.composer`, e.g. "dataform_tag" for `builders/dataform_tag.py`). The module is
ordinary code, checked by ruff and mypy and imported by the tests in real Airflow 2 and 3; the
generated DAG holds its text, once, when the pipeline uses the executor (`dag_source` says how
it is included: its docstring and its imports of `__future__` and levelflow are dropped, its
other imports join the DAG's import block).

A builder module holds, as ordinary code:

- the imports of its operators;
- `build_<module>(step, make)`, the builder, which returns the step's tasks in run order;
  `make(operator_class, name, **kwargs)` creates the step's task `<step>.<name>` (in its
  thread's task group) with the step's retries and time-out, and `step` is the step's data
  from the DAG's PIPELINE literal; the names are the engine's `BUILDER_TASKS` (what
  `levelflow plan` counts with);
- for an executor with job files, the registration of its request function in
  `JOB_REQUESTS`, imported from `levelflow.executors` (where the requests live, engine-neutral)
  or wrapped here when the Composer engine must do something first (`bq_saved_query` reads
  its query through the Dataform API);
- the extra Jinja macros it needs, added to `MACROS`.

It imports nothing from levelflow but `levelflow.backends.composer.dag_runtime` (the names the
DAG itself defines: `JOB_REQUESTS`, `MACROS`, `PIPELINE`, `job_param`, `sibling`,
`templated`, ...) and `levelflow.executors` (each name imported from there brings its source
into the DAG). Adding an executor is one catalogue entry, one module here and its tests.

The step's `job_params` task (the DAG's `load_job_params`) loads the job file (from GCS at run
time, or embedded with `--jobs-dir`), recognises its format and returns what the registered
request function returns: the operators' arguments. Builders read them through the DAG's
Jinja macros:

- `job_param(ti, KEY)`: KEY of the operators' arguments returned by the step's `job_params` task;
- `sibling(ti, TASK)`: the XCom return value of another task of the same step;
- `unique_id(ti)`: a per-run id made of the job name and the run id (Dataproc batch ids);
- `query_variables(params, dag_run)`: the run's `start_date` / `end_date`.

The DAG renders templates as native objects, so `{{ job_param(ti, 'batch') }}` yields a dict.
(A template whose result is a string is parsed as a Python literal by native rendering, so a
structure that mixes values is better returned whole by one macro or one key.) Operator fields
that the provider does not template are made templated with
`templated(OperatorClass, 'field', ...)`.
"""
