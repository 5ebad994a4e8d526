import json

import pytest

import levelflow
from conftest import PARAMS

GOOD = {"pRegion": "us-central1", "pProjectID": "my-project-1", "pFunctionIntermediateName": "orch-framework-intermediate",
        "pJobsDefinitionsBucket": "my-jobs"}


def test_established_list_format():
    params = levelflow.load_params(PARAMS)
    assert params.intermediate_url == "https://us-central1-my-orchestration-dev.cloudfunctions.net/orch-framework-intermediate"
    assert params.extra["pDataTransformationProjectID"] == "my-transformation-dev"


def test_plain_mapping_format(tmp_path):
    file = tmp_path / "platform-parameters-x.json"
    file.write_text(json.dumps(GOOD))
    assert levelflow.load_params(file).function_url("f") == "https://us-central1-my-project-1.cloudfunctions.net/f"


@pytest.mark.parametrize("data, words, line", [
    ([{"ParameterKey": k, "ParameterValue": v} for k, v in GOOD.items() if k != "pRegion"], "missing required parameter pRegion", 1),
    ({k: v for k, v in GOOD.items() if k != "pJobsDefinitionsBucket"}, "missing required parameter pJobsDefinitionsBucket", 1),
    ([{"ParameterKey": "pRegion"}], "must be an object with ParameterKey and ParameterValue", 2),
    ({**GOOD, "pRegion": "Not A Region"}, "pRegion", 2),
    ("text", "must be a list", 1),
])
def test_bad_parameters(tmp_path, data, words, line):
    file = tmp_path / "platform-parameters-bad.json"
    file.write_text(json.dumps(data, indent=1))
    with pytest.raises(levelflow.LevelflowError) as caught:
        levelflow.load_params(file)
    problem = caught.value.problems[0]
    assert words in problem.message
    assert problem.file == str(file) and problem.line == line


@pytest.mark.parametrize("key, value, words", [
    ("pProjectID", "My_Project", "pProjectID must be a project id: 6 to 30 lowercase letters"),
    ("pRegion", "Not A Region", "pRegion must be a Google Cloud region such as us-central1"),
    ("pJobsDefinitionsBucket", "B", "pJobsDefinitionsBucket must be a bucket name"),
    ("pFunctionsBaseUrl", "http://evil.example", "pFunctionsBaseUrl must be https, or plain http to a loopback address"),
])
def test_a_bad_parameter_is_said_in_plain_words_at_its_own_entry(tmp_path, key, value, words):
    """The parameter named once, what it must be in words (no regular expression), located at
    its entry of the parameters file (not at the file's top, not in the definition)."""
    data = [{"ParameterKey": k, "ParameterValue": v} for k, v in {**GOOD, key: value}.items()]
    file = tmp_path / "platform-parameters-bad.json"
    file.write_text(json.dumps(data, indent=1))
    with pytest.raises(levelflow.LevelflowError) as caught:
        levelflow.load_params(file)
    [problem] = caught.value.problems
    assert words in str(problem) and str(problem).count(key) == 1 and "^" not in problem.message
    index = list({**GOOD, key: value}).index(key)
    assert problem.file == str(file) and problem.path == (index, "ParameterValue")
    assert file.read_text().splitlines()[problem.line - 1].strip().startswith('"ParameterValue"')
