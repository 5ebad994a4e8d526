"""Runs inside a real Airflow environment (.venv-airflow2 / .venv-airflow3), driven by the tests.

    python airflow_harness.py inspect DAG_FOLDER OUT.json [--forbid-network]
        Parse every DAG file of the folder with a DagBag and describe each DAG and task.
        --forbid-network makes every socket connect / name lookup fail and records it.
    python airflow_harness.py auth DAG_FILE OUT.json URL...
        Load one generated DAG module and report what its executor calls would send as
        authentication to each URL (headers, or the error raised).
    python airflow_harness.py run DAG_FOLDER OUT.json DAG_ID [RUN_CONF_JSON]...
        Run each DAG once with dag.test() and report the run's and each task's state (and the
        exception of each failed PythonOperator task).
    python airflow_harness.py run-at DAG_FOLDER OUT.json [DAG_ID ISO_INSTANT]...
        Run each DAG with dag.test() at its instant (the logical date Airflow gives a manual run
        then) and report each run's state and data interval.

Output is JSON, so the tests (in levelflow's own environment) make their assertions.
"""
import json
import socket
import sys
import time

NETWORK_ATTEMPTS = []
INTERFACES = socket.if_nameindex()  # this process's network namespace, before sockets are blocked


def forbid_network():
    def refuse(*args, **kwargs):
        NETWORK_ATTEMPTS.append(repr(args)[:200])
        raise OSError("network access is forbidden while parsing DAGs")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


def dag_bag(folder):
    from airflow.models import DagBag

    return DagBag(folder)


def describe_task(task):
    return {
        "class": type(task).__name__,
        "base_classes": [cls.__name__ for cls in type(task).__mro__],
        "upstream": sorted(task.upstream_task_ids),
        "group": task.task_group.group_id if task.task_group is not None else None,
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        "retries": task.retries,
        "execution_timeout": task.execution_timeout.total_seconds() if task.execution_timeout else None,
        "template_fields": list(task.template_fields),
        "deferrable": getattr(task, "deferrable", None),
        "mode": getattr(task, "mode", None),
        "poke_interval": getattr(task, "poke_interval", None),
        "values": {name: _plain(getattr(task, name, None)) for name in task.template_fields},
    }


def _plain(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def describe_dag(dag):
    return {
        "schedule": _plain(dag.schedule if hasattr(dag, "schedule") else dag.schedule_interval),
        "catchup": dag.catchup,
        "params": sorted(dag.params.keys()),
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md,
        "native": dag.render_template_as_native_obj,
        "dagrun_timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
        "tasks": {task.task_id: describe_task(task) for task in dag.tasks},
        "groups": sorted(group_id for group_id in dag.task_group.get_task_group_dict() if group_id),
    }


def inspect(folder, out, forbid):
    if forbid:
        forbid_network()
    started = time.perf_counter()
    bag = dag_bag(folder)
    seconds = time.perf_counter() - started
    result = {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": {dag_id: describe_dag(dag) for dag_id, dag in bag.dags.items()},
        "network_attempts": NETWORK_ATTEMPTS,
        "interfaces": sorted(name for _, name in INTERFACES),
        "warnings": {str(k): [str(w) for w in v] for k, v in getattr(bag, "captured_warnings", {}).items()},
        "seconds": seconds,
    }
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)


def rendered_fields(ti):
    """The task's templated fields as rendered when it ran (None if it never ran)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    return RenderedTaskInstanceFields.get_templated_fields(ti)


ERRORS = {}  # task id -> the last exception its PythonOperator raised, as "Type: message"


def record_python_task_errors():
    """Keep the exception of every failing PythonOperator (dag.test runs tasks in this process),
    so that the tests can read why a task failed."""
    try:
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:
        from airflow.operators.python import PythonOperator
    execute = PythonOperator.execute

    def recording(self, context):
        try:
            return execute(self, context)
        except Exception as error:
            ERRORS[self.task_id] = f"{type(error).__name__}: {error}"
            raise

    PythonOperator.execute = recording


def run(folder, out, runs):
    record_python_task_errors()
    bag = dag_bag(folder)
    result = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "runs": {}}
    for dag_id, conf in runs:
        ERRORS.clear()
        dag_run = bag.dags[dag_id].test(run_conf=conf)
        tis = dag_run.get_task_instances()
        result["runs"][dag_id] = {
            "state": str(dag_run.state),
            "tasks": {ti.task_id: str(ti.state) for ti in tis},
            "rendered": {ti.task_id: _plain(rendered_fields(ti)) for ti in tis},
            "errors": dict(ERRORS),
        }
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)


def run_at(folder, out, runs):
    """dag.test() at each instant: Airflow 3 takes `logical_date`, Airflow 2 `execution_date`;
    the data interval is the timetable's for a manual run then."""
    import inspect
    from datetime import datetime

    bag = dag_bag(folder)
    result = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "runs": []}
    for dag_id, instant in runs:
        dag = bag.dags[dag_id]
        keyword = "logical_date" if "logical_date" in inspect.signature(dag.test).parameters else "execution_date"
        dag_run = dag.test(**{keyword: datetime.fromisoformat(instant)})
        result["runs"].append({"dag_id": dag_id, "instant": instant, "state": str(dag_run.state),
                               "data_interval_end": dag_run.data_interval_end.isoformat()})
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)


def auth(dag_file, out, urls):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generated_dag", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = {}
    for url in urls:
        try:
            result[url] = {"headers": module._auth_headers(url)}
        except Exception as error:  # reported, the test decides
            result[url] = {"error": f"{type(error).__module__}.{type(error).__name__}: {error}"}
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)


def main(argv):
    command, folder, out, *rest = argv
    if command == "inspect":
        inspect(folder, out, "--forbid-network" in rest)
    elif command == "run-at":
        run_at(folder, out, list(zip(rest[::2], rest[1::2])))
    elif command == "auth":
        auth(folder, out, rest)
    elif command == "run":
        run(folder, out, [(dag_id, json.loads(conf)) for dag_id, conf in zip(rest[::2], rest[1::2])])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
