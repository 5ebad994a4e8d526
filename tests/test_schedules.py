"""Schedules (docs/scheduling.md): the `schedule` key in both forms, and the dates a scheduled
run gets when its arguments give none, by the AEF pipeline-executor's rules, read in the
schedule's time zone on the day the run is triggered. The generated workflow computes them
in workflows-emulator from a given trigger instant; the expected dates are written out by
hand (month and year ends, a leap day, time zones whose day differs from UTC's, the day after
a daylight-saving change)."""
import datetime as dt
import json

import pytest

import cloud_workflows_emulator as cwe
import levelflow
from conftest import PARAMS, pipeline, run_cli, step
from levelflow.backends import GenerateOptions, engine_for
from levelflow.model import Schedule
from native_jobs import BUCKET, DATES, PROPERTIES, dataform, stocked_fake

# (rule, time zone, trigger instant in UTC, start_date, end_date)
TRIGGERS = [
    ("YESTERDAY", "UTC", "2026-03-01T04:00:00", "2026-02-28", "2026-02-28"),
    ("TODAY", "UTC", "2026-03-01T04:00:00", "2026-03-01", "2026-03-01"),
    ("YESTERDAY_TODAY", "UTC", "2028-03-01T04:00:00", "2028-02-29", "2028-03-01"),
    ("PREVIOUS_MONTH", "UTC", "2026-01-15T04:00:00", "2025-12-01", "2025-12-31"),
    ("PREVIOUS_MONTH", "UTC", "2028-03-01T00:00:00", "2028-02-01", "2028-02-29"),
    # 05:00 on 1 March in Tokyo is still 28 February in UTC
    ("TODAY", "Asia/Tokyo", "2026-02-28T20:00:00", "2026-03-01", "2026-03-01"),
    ("YESTERDAY", "Asia/Tokyo", "2026-02-28T20:00:00", "2026-02-28", "2026-02-28"),
    # 21:00 on 28 February in Los Angeles is already 1 March in UTC
    ("TODAY", "America/Los_Angeles", "2026-03-01T05:00:00", "2026-02-28", "2026-02-28"),
    ("PREVIOUS_MONTH", "America/Los_Angeles", "2026-03-01T05:00:00", "2026-01-01", "2026-01-31"),
    # 00:30 in Paris on the day after clocks went forward (29 March 2026 had 23 hours)
    ("YESTERDAY", "Europe/Paris", "2026-03-29T22:30:00", "2026-03-29", "2026-03-29"),
    ("YESTERDAY_TODAY", "Europe/Paris", "2026-10-25T23:30:00", "2026-10-25", "2026-10-26"),  # after a 25-hour day
]


def epoch(instant: str) -> float:
    return dt.datetime.fromisoformat(instant).replace(tzinfo=dt.timezone.utc).timestamp()


def scheduled(tmp_path, schedule, name="native_pipe", levels=None):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pipeline(levels or [[[dataform()]]], schedule=schedule)))
    return path


def native_workflow(path):
    plan = levelflow.load_plan(path, levelflow.load_params(PARAMS))
    return engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))


def compiled_dates(fake) -> dict:
    """The dates the Dataform step compiled with (quoted by the rule of the intermediate)."""
    [compiled] = fake.calls("dataform.projects.locations.repositories.compilationResults.create")
    return {name: value.strip("'") for name, value in compiled.body["codeCompilationConfig"]["vars"].items()}


@pytest.mark.parametrize("rule, zone, instant, start, end", TRIGGERS)
def test_a_scheduled_workflow_computes_its_dates_from_the_trigger_in_its_time_zone(tmp_path, rule, zone, instant, start, end):
    files = native_workflow(scheduled(tmp_path, {"cron": "0 4 * * *", "time_zone": zone, "dates": rule}))
    with stocked_fake() as fake:
        outcome = cwe.run(files, {"workflow_properties": PROPERTIES}, google=fake, now=epoch(instant))
        assert outcome.error is None, outcome.error
        assert compiled_dates(fake) == {"start_date": start, "end_date": end}


def test_dates_given_in_the_arguments_win_over_the_rule(tmp_path):
    files = native_workflow(scheduled(tmp_path, {"cron": "0 4 * * *", "dates": "PREVIOUS_MONTH"}))
    with stocked_fake() as fake:
        cwe.run(files, {"query_variables": DATES, "workflow_properties": PROPERTIES}, google=fake, now=epoch("2026-05-05T04:00:00"))
        assert compiled_dates(fake) == DATES


def test_an_unscheduled_workflow_runs_for_today_in_utc(tmp_path):
    files = native_workflow(scheduled(tmp_path, None))
    with stocked_fake() as fake:
        cwe.run(files, {"workflow_properties": PROPERTIES}, google=fake, now=epoch("2026-02-28T23:30:00"))
        assert compiled_dates(fake) == {"start_date": "2026-02-28", "end_date": "2026-02-28"}


def test_a_split_scheduled_pipeline_computes_the_dates_once_in_its_parent(tmp_path):
    padding = {"note": "x" * 2000, **PROPERTIES, "jobs_definitions_bucket": "my-orchestration-dev-jobs"}
    levels = [[[step(f"L{li}T{ti}", JOB_NAME=f"marts_{li}_{ti}", FUNCTION_ID_NAME="dataform-tag-executor",
                     STEP_PROPERTIES=padding)] for ti in range(10)]
              for li in range(8)]
    files = native_workflow(scheduled(tmp_path, {"cron": "0 4 * * *", "time_zone": "Asia/Tokyo"}, levels=levels))
    assert len(files) >= 3
    with stocked_fake() as fake:
        job = fake.objects[f"{BUCKET}/dataform-tag-executor/daily_marts.json"]
        fake.objects.update({f"{BUCKET}/dataform-tag-executor/marts_{li}_{ti}.json": job for li in range(8) for ti in range(10)})
        outcome = cwe.run(files, {}, google=fake, now=epoch("2026-02-28T20:00:00"))
        assert outcome.error is None, outcome.error
        calls = fake.calls("dataform.projects.locations.repositories.compilationResults.create")
        assert len(calls) == 80
        assert {json.dumps(c.body["codeCompilationConfig"]["vars"]) for c in calls} == {
            json.dumps({"start_date": "'2026-02-28'", "end_date": "'2026-02-28'"})}


def test_both_forms_of_the_key_read_alike_with_the_defaults():
    short = levelflow.model.pipeline_from(pipeline([[[dataform()]]], schedule="0 4 * * *")).schedule
    assert short == Schedule("0 4 * * *", "UTC", False, "YESTERDAY", None)
    long = levelflow.model.pipeline_from(pipeline([[[dataform()]]], schedule={
        "cron": "@daily", "time_zone": "Europe/Paris", "paused": "True", "dates": "TODAY",
        "workflow_properties": '{"region": "eu"}'})).schedule
    assert long == Schedule("@daily", "Europe/Paris", True, "TODAY", {"region": "eu"})


@pytest.mark.parametrize("schedule, where, message", [
    ({"cron": "0 4 * * *", "time_zone": "Europe/Pariss"}, "schedule.time_zone", "did you mean 'Europe/Paris'?"),
    ({"cron": "0 4 * * *", "dates": "LAST_WEEK"}, "schedule.dates", "must be one of YESTERDAY, TODAY, YESTERDAY_TODAY, PREVIOUS_MONTH"),
    ({"time_zone": "UTC"}, "schedule", "missing required key cron"),
    ({"cron": "0 4 * *"}, "schedule.cron", "must be a 5-field cron expression"),
    ({"cron": "0 4 * * *", "timezone": "UTC"}, "schedule.timezone", "did you mean time_zone?"),
])
def test_a_bad_schedule_is_a_located_error(tmp_path, schedule, where, message):
    result = run_cli("validate", scheduled(tmp_path, schedule))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{where}: " in result.stderr and message in result.stderr


@pytest.fixture(scope="module", params=["airflow3", "airflow2"])
def airflow_dates(request, tmp_path_factory):
    """Each TRIGGERS case as a Composer DAG (functions mode, one sync step against the stub)
    whose cron fires at that instant in its time zone, run with dag.test() at the instant in
    real Airflow: the dates its executor call carries, in order."""
    from zoneinfo import ZoneInfo

    from airflow_support import run_harness
    from levelflow.scenario import Scenario
    from levelflow.stub_server import RunningStub

    work = tmp_path_factory.mktemp(f"schedules-{request.param}")
    dags, runs = work / "dags", []
    with RunningStub(Scenario()) as stub:
        params = work / "platform-parameters-stub.json"
        base = json.loads(PARAMS.read_text())
        params.write_text(json.dumps(base + [{"ParameterKey": "pFunctionsBaseUrl", "ParameterValue": stub.url}]))
        for n, (rule, zone, instant, _start, _end) in enumerate(TRIGGERS):
            local = dt.datetime.fromisoformat(instant).replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(zone))
            name = f"scheduled_{n}"
            path = work / f"{name}.json"
            path.write_text(json.dumps(pipeline([[[{"JOB_ID": "S", "JOB_NAME": "S", "TYPE": "sync", "FUNCTION_NAME": "notifier"}]]], engine="composer",
                                                name=name, schedule={"cron": f"{local.minute} {local.hour} * * *",
                                                                     "time_zone": zone, "dates": rule})))
            levelflow.generate([path], params, dags, options=GenerateOptions(step_mode="functions"))
            runs += [name, f"{instant}+00:00"]
        result = run_harness(request.param, work, "run-at", dags, *runs)
        calls = [call for call in stub.state.calls if call["hop"] == "executor"]
    return result, calls


def test_a_scheduled_dag_gives_the_same_dates_for_the_same_instant_in_real_airflow(airflow_dates):
    result, calls = airflow_dates
    assert result["import_errors"] == {}
    assert [run["state"] for run in result["runs"]] == ["success"] * len(TRIGGERS), (result["runs"], [(c["status"], c["answer"]) for c in calls[:2]])
    assert [dt.datetime.fromisoformat(run["data_interval_end"]).timestamp() for run in result["runs"]] == [
        epoch(instant) for _rule, _zone, instant, _s, _e in TRIGGERS]  # each run was triggered at its instant
    dates = [{name: value.strip("'") for name, value in call["body"]["query_variables"].items()} for call in calls]
    assert dates == [{"start_date": start, "end_date": end} for _rule, _zone, _instant, start, end in TRIGGERS]
