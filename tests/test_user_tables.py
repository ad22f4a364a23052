"""Tables as users have them: a pandas DataFrame or a CSV file, missing values, and the errors that say what to do."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import tfdpgen  # noqa: F401
from tfdpgen.data.images import DataError
from tfdpgen.data.tables import MISSING, TableSchema, load_table, read_csv, table_codes
from tfdpgen.runs import evaluate_run, load_trained, train_run

SCHEMA = {"condition": "outcome",
          "columns": [{"name": "age", "type": "continuous", "min": 0, "max": 100},
                      {"name": "smoker", "type": "categorical", "values": ["no", "yes"], "missing": True},
                      {"name": "visits", "type": "categorical", "values": ["0", "1", "2"]},
                      {"name": "outcome", "type": "categorical", "values": ["ill", "well"]}]}


def patients(n, seed=0):
    """Smokers are ill more often; a fifth of the smoker cells are missing, and those patients are mostly well."""
    rng = np.random.default_rng(seed)
    smoker = rng.random(n) < 0.4
    ill = rng.random(n) < np.where(smoker, 0.8, 0.2)
    smoker_cell = np.where(smoker, "yes", "no").astype(object)
    gaps = rng.random(n) < 0.2
    smoker_cell[gaps] = np.where(rng.random(gaps.sum()) < 0.5, None, np.nan)
    ill[gaps] = rng.random(gaps.sum()) < 0.1
    return pd.DataFrame({"age": rng.uniform(20, 80, n).round(), "smoker": smoker_cell,
                         "visits": rng.integers(0, 3, n).astype(float),  # 2.0 must read as the declared "2"
                         "outcome": np.where(ill, "ill", "well"), "unused": 0})


def test_dataframe_missing_values_are_the_declared_category():
    frame = patients(50)
    data = load_table(frame=frame, schema=SCHEMA)
    codes = table_codes(data, bins=4)
    gaps = frame["smoker"].isna().to_numpy()
    assert gaps.any() and (codes[gaps, 1] == 2).all() and (codes[~gaps, 1] < 2).all()
    assert codes[:, 2].tolist() == frame["visits"].astype(int).tolist()
    assert data.schema.columns[1].values == ["no", "yes", MISSING]
    assert TableSchema.from_dict(data.schema.to_dict()) == data.schema  # the flag round-trips, not a doubled value
    assert data.schema.to_dict() == SCHEMA


def with_column(schema, index, **changes):
    columns = list(schema["columns"])
    columns[index] = {key: value for key, value in dict(columns[index], **changes).items() if value is not None}
    return dict(schema, columns=columns)


@pytest.mark.parametrize("frame, schema, message", [
    (patients(20).assign(visits=lambda f: f["visits"].where(f.index != 3)), SCHEMA,
     "row 3, column 'visits': the value is missing. Declare \"missing\": true for 'visits'"),
    (patients(20).assign(age=lambda f: f["age"].where(f.index != 5)), SCHEMA,
     "row 5, column 'age': the value is missing, and a continuous column has no category for it"),
    (patients(20).assign(visits=lambda f: f["visits"].where(f.index != 7, 9.0)), SCHEMA,
     r"row 7, column 'visits': 9.0 is not one of the declared values \['0', '1', '2'\]"),
    (patients(20).drop(columns="visits"), SCHEMA, "the DataFrame has no column 'visits' declared in the schema"),
    (patients(20), with_column(SCHEMA, 3, values=["ill", "well", ""], missing=True),
     "declares \"missing\": true and also the value ''"),
    (patients(20), with_column(SCHEMA, 0, missing=True), "only a categorical column can declare \"missing\": true"),
    (patients(20), with_column(SCHEMA, 0, min=None, max=None),
     r"needs declared bounds 'min' < 'max' \(public knowledge, never computed from the private rows\)"),
    (patients(20), None, "a DataFrame needs schema="),
])
def test_bad_tables_fail_with_their_row_and_column(frame, schema, message):
    with pytest.raises(DataError, match=message):
        load_table(frame=frame, schema=schema)


def test_csv_file_with_empty_cells(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("age,smoker,visits,outcome\n40,yes,0,ill\n70,,2,well\n")
    data = load_table("patients", str(path), SCHEMA)
    assert table_codes(data, bins=4)[:, 1].tolist() == [1, 2]
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    path.write_text("age,smoker,visits,outcome\n40,yes,0,ill\n70,no,,well\n")
    with pytest.raises(DataError, match="row 1, column 'visits': the value is missing"):
        load_table("patients", str(path), str(tmp_path / "schema.json"))


@pytest.mark.parametrize("model", ["marginal", "tabgan"])
def test_a_dataframe_trains_samples_its_missing_category_and_evaluates(tmp_path, model):
    frame = patients(1500)
    run = str(tmp_path / model)
    settings = {"marginal": {"marginal": {"components": 16}}, "tabgan": {"epochs": 2}}[model]
    train_run(model=model, dataset=frame, schema=SCHEMA, epsilon=2.0, output=run, seed=0, verbose=0, **settings)
    with open(os.path.join(run, "run.json")) as f:
        config = json.load(f)
    assert config["dataset"] == "dataframe" and config["schema"] == SCHEMA
    assert not any(name.endswith((".csv", ".parquet", ".pkl")) for name in os.listdir(run))  # no copy of the rows
    network, _ = load_trained(run)
    sample = network.sample(4000, seed=0, **({} if model == "marginal" else {"labels": np.zeros(4000, int)}))
    smoker = np.array([value.decode() if isinstance(value, bytes) else value for value in np.asarray(sample["smoker"])])
    assert set(smoker) <= {"no", "yes", MISSING}
    if model == "marginal":  # the marginal family learns the gap rate (0.2) within its noise at epsilon 2
        assert abs(np.mean(smoker == MISSING) - 0.2) < 0.06
    with pytest.raises(DataError, match="trained on a DataFrame, which tfdpgen does not keep"):
        evaluate_run(run, verbose=False)
    result = evaluate_run(run, verbose=False, data=frame)
    assert result["dataset"] == "dataframe" and result["held_out_records"] == 300
    assert result["membership_inference"]["consistent"]
    other = evaluate_run(run, verbose=False, data=frame, real_test=patients(200, seed=1))
    assert other["held_out_records"] == 200


def test_a_csv_read_in_chunks_codes_as_the_dataframe_does_compactly(tmp_path):
    """Bug caught: a table was held as Python dicts of strings and one-hot float rows, about 6 KB a row (6.4 GB for a
    million Adult rows). Now it is coded a chunk at a time into a byte a categorical cell; the codes are the
    DataFrame path's, whatever the chunk size."""
    frame = patients(103)
    path = tmp_path / "patients.csv"
    frame.assign(visits=frame["visits"].astype(int)).to_csv(path, index=False)
    schema = TableSchema.from_dict(SCHEMA)
    whole = load_table(frame=frame, schema=SCHEMA)
    for chunk_rows in (7, 100_000):
        chunked = read_csv(str(path), schema, chunk_rows=chunk_rows)
        assert np.array_equal(table_codes(chunked, 4), table_codes(whole, 4))
        assert np.allclose(chunked.numbers, whole.numbers) and np.array_equal(chunked.features, whole.features)
    assert chunked.categories.dtype == np.uint8 and chunked.categories.shape == (103, 2)
    assert table_codes(chunked, 16).dtype == np.uint8


@pytest.mark.parametrize("bad_rows, message", [
    ({13: "40,maybe,0,ill", 11: "40,yes,7,ill"},  # an earlier column in a later row; the earlier row is reported
     r"^row 11, column 'visits': '7' is not one of the declared values"),
    ({13: "40,maybe,0,ill", 17: "40,yes,0"}, r"^row 13, column 'smoker': 'maybe'"),
    ({13: "abc,yes,0,ill", 17: "40,yes,0"}, r"^row 13, column 'age': 'abc' is not a number"),
    ({17: "40,yes,0"}, r"^row 17, column 'outcome': the value is missing"),  # a short row: its outcome is missing
])
def test_a_bad_cell_is_named_by_its_row_in_the_file_across_chunks_the_first_row_first(tmp_path, bad_rows, message):
    """Bug this guards against: coding a column at a time (and a chunk at a time) must still name the first bad row
    of the file, counted from its first record, and within it the first bad column."""
    rows = [bad_rows.get(number, "40,yes,0,ill") for number in range(20)]
    path = tmp_path / "patients.csv"
    path.write_text("age,smoker,visits,outcome\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        read_csv(str(path), TableSchema.from_dict(SCHEMA), chunk_rows=4)


def test_a_csv_without_a_declared_column_is_refused_in_one_line(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("age,smoker,outcome\n40,yes,ill\n")
    with pytest.raises(DataError, match=r"has no column 'visits' declared in the schema \(its header names"):
        read_csv(str(path), TableSchema.from_dict(SCHEMA))


def test_a_users_csv_is_named_as_the_user_gave_it(tmp_path, capsys):
    """Bug caught: `--data-dir patients.csv --schema s.json` without --dataset printed "marginal on breast_cancer" and
    recorded that name in run.json and the export."""
    frame = patients(600)
    path = tmp_path / "patients.csv"
    frame.assign(visits=frame["visits"].astype(int)).to_csv(path, index=False)
    run = train_run(model="marginal", data_dir=str(path), schema=SCHEMA, epsilon=2.0, output=str(tmp_path / "run"),
                    seed=0, components=8)
    assert "marginal on patients (" in capsys.readouterr().out
    with open(os.path.join(run, "run.json")) as f:
        assert json.load(f)["dataset"] == "patients"
    assert load_trained(run)[1]["dataset"] == "patients"
    assert evaluate_run(run, verbose=False)["dataset"] == "patients"
