"""Tables for the tabular GAN: a declared schema, the encoding the networks see, and decoding back to the columns.

The schema (column names, category values, and bounds of continuous columns) is public metadata the user declares; it
is never computed from the records, so fitting the encoding costs no privacy. Continuous values are scaled from their
declared [min, max] to [-1, 1] (values outside are clipped to the bounds); categories are one-hot. The privacy
guarantee does not cover the schema itself.

Bundled: `breast_cancer` (scikit-learn, 569 rows: 30 continuous measurements and the diagnosis; bounds from its
documentation, which computed them from the same 569 rows: a demonstration schema, not public knowledge independent of
the records, so a run on it protects the rows but not those 60 bounds) and `adult` (../shared/data/adult: adult.csv
and adult-domain.json, every column integer-coded).
Any CSV: a directory with one .csv file and `--schema schema.json`:
{"condition": "label column", "columns": [{"name": "age", "type": "continuous", "min": 17, "max": 90},
                                          {"name": "job", "type": "categorical", "values": ["a", "b"], "missing": true},
                                          {"name": "label", "type": "categorical", "values": ["no", "yes"]}]}
A CSV file's path may be given instead of its folder. In Python, a pandas DataFrame is a table too
(`train_run(model="marginal", dataset=frame, schema={...})`; the schema a dict, a path or a TableSchema).

Missing values (an empty CSV cell, None, NaN, pandas.NA) are a category of their own in a categorical column that
declares `"missing": true`; it decodes to the empty string. Whether a column may be missing is declared, like its
categories, because a choice made by looking at the private rows would be a release. Anywhere else a missing value is
an error naming its row and column, raised before training.
"""
import csv
import dataclasses
import itertools
import json
import os
from typing import List, Optional

import numpy as np

from tfdpgen.data.images import DataError

TABLES = ("breast_cancer", "adult")
DATAFRAME = "dataframe"  # the dataset name of a run that trained on an in-memory table
MISSING = ""  # the category missing values take in a column that declares "missing": true
SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str  # "categorical" or "continuous"
    values: Optional[List[str]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    missing: bool = False  # categorical only: missing values are the last category, MISSING

    @property
    def width(self) -> int:
        return len(self.values) if self.type == "categorical" else 1


@dataclasses.dataclass(frozen=True)
class TableSchema:
    columns: List[Column]
    condition: str  # the categorical column the GAN is conditioned on (class balance, sampling by class)

    @classmethod
    def from_dict(cls, spec: dict) -> "TableSchema":
        try:
            columns = [Column(**column) for column in spec["columns"]]
            condition = spec["condition"]
        except (KeyError, TypeError) as error:
            raise DataError(f"a table schema needs 'condition' and 'columns' (each with name and type, and values or "
                            f"min and max): {error}") from error
        for column in columns:
            if column.type == "categorical" and not column.values:
                raise DataError(f"categorical column {column.name!r} needs its list of 'values'.")
            if column.type == "continuous" and not (column.min is not None and column.max is not None
                                                    and column.min < column.max):
                raise DataError(f"continuous column {column.name!r} needs declared bounds 'min' < 'max' (public "
                                "knowledge, never computed from the private rows).")
            if column.type not in ("categorical", "continuous"):
                raise DataError(f"column {column.name!r} has type {column.type!r}: use categorical or continuous.")
        for index, column in enumerate(columns):
            if column.missing and column.type != "categorical":
                raise DataError(f"column {column.name!r}: only a categorical column can declare \"missing\": true (a "
                                "continuous one has no category to hold it): fill its gaps with a public value, or "
                                "declare it categorical.")
            if column.missing:
                if MISSING in column.values:
                    raise DataError(f"column {column.name!r} declares \"missing\": true and also the value "
                                    f"{MISSING!r}, which is the missing category: drop it from 'values'.")
                columns[index] = dataclasses.replace(column, values=list(column.values) + [MISSING])
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            raise DataError("column names in the schema must be unique.")
        if condition not in names or columns[names.index(condition)].type != "categorical":
            raise DataError(f"the schema's condition {condition!r} must name one of its categorical columns.")
        return cls(columns, condition)

    @classmethod
    def of(cls, schema) -> "TableSchema":
        """A schema given as a TableSchema, a dict in the JSON layout, or the path of its JSON file."""
        if isinstance(schema, TableSchema):
            return schema
        return cls.from_dict(schema) if isinstance(schema, dict) else cls.load(schema)

    @classmethod
    def load(cls, path) -> "TableSchema":
        try:
            with open(path) as f:
                spec = json.load(f)
        except OSError as error:
            raise DataError(f"--schema {path} cannot be read ({error.strerror or error}): give the path of the table's "
                            "JSON schema.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"--schema {path} is not valid JSON ({error}): fix the file.") from None
        try:
            return cls.from_dict(spec)
        except DataError as error:
            raise DataError(f"--schema {path}: {error}") from None

    def to_dict(self) -> dict:
        """The JSON layout from_dict reads (the missing category is the flag, not a value)."""
        columns = []
        for column in self.columns:
            spec = {k: v for k, v in dataclasses.asdict(column).items() if v is not None and k != "missing"}
            if column.missing:
                spec.update(values=column.values[:-1], missing=True)
            columns.append(spec)
        return {"condition": self.condition, "columns": columns}

    @property
    def condition_column(self) -> Column:
        return next(column for column in self.columns if column.name == self.condition)

    @property
    def features(self) -> List[Column]:
        """Every column but the condition: what the generator produces."""
        return [column for column in self.columns if column.name != self.condition]


@dataclasses.dataclass
class TableData:
    """A table coded by its schema, compactly (a byte or two a categorical cell, so ten million rows fit in memory):
    `categories` [N, categorical features], each cell its category's index in the smallest unsigned type; `numbers`
    [N, continuous features], float32 scaled from the declared bounds to [-1, 1]; `labels` [N] int32, the condition's
    codes. Feature columns keep the schema's order within each array. `features` is the networks' encoding, one-hot
    categories and the numbers in the schema's order [N, width], built when asked for (the tabular GAN's input)."""
    categories: np.ndarray
    numbers: np.ndarray
    labels: np.ndarray
    schema: TableSchema
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def features(self) -> np.ndarray:
        parts, category, number = [], 0, 0
        for column in self.schema.features:
            if column.type == "categorical":
                parts.append(np.eye(column.width, dtype=np.float32)[self.categories[:, category]])
                category += 1
            else:
                parts.append(self.numbers[:, number:number + 1])
                number += 1
        return np.concatenate(parts, 1) if parts else np.zeros([len(self), 0], np.float32)

    @classmethod
    def from_features(cls, features: np.ndarray, labels: np.ndarray, schema: TableSchema, name: str = ""):
        """The compact table of encoded rows `features` [N, width] (the networks' encoding) and their labels."""
        categories, numbers, start = [], [], 0
        for column in schema.features:
            part = features[:, start:start + column.width]
            start += column.width
            (categories if column.type == "categorical" else numbers).append(
                np.argmax(part, 1) if column.type == "categorical" else part[:, 0])
        return cls(_stack(categories, _code_type(schema), len(labels)), _stack(numbers, np.float32, len(labels)),
                   np.asarray(labels, np.int32), schema, name)


def _code_type(schema: TableSchema):
    """The smallest unsigned type holding every categorical column's codes."""
    widest = max([column.width for column in schema.columns if column.type == "categorical"], default=1)
    return np.uint8 if widest <= 1 << 8 else np.uint16 if widest <= 1 << 16 else np.uint32


def _stack(columns, dtype, rows) -> np.ndarray:
    return np.stack(columns, 1).astype(dtype) if columns else np.zeros([rows, 0], dtype)


def encode(rows: List[dict], schema: TableSchema) -> TableData:
    """Rows (dicts of strings or numbers) -> TableData; a value the schema does not allow fails with its row number."""
    names = [column.name for column in schema.columns]
    for number, row in enumerate(rows):
        for name in names:
            if name not in row:
                raise DataError(f"row {number} has no column {name!r} declared in the schema.")
    if not rows:
        raise DataError("the table has no rows.")
    return encode_columns({name: [row[name] for row in rows] for name in names}, schema)


def encode_columns(columns: dict, schema: TableSchema, first_row: int = 0) -> TableData:
    """A table given as columns (name -> a sequence of strings or numbers, one per row) -> TableData, coded a column
    at a time. A value the schema does not allow fails with one line naming its row (counted from `first_row`) and
    column: the first such row, and within it the first such column in the schema's order, as a reader going row by
    row would find it."""
    coded, bad = {}, []
    for index, column in enumerate(schema.columns):
        values = columns[column.name]
        code = _category_codes if column.type == "categorical" else _scaled_numbers
        coded[column.name], first_bad = code(values, column)
        if first_bad is not None:
            bad.append((first_bad, index))
    if bad:
        row, index = min(bad)
        column = schema.columns[index]
        check = _category_code if column.type == "categorical" else _number
        check(columns[column.name][row], column, first_row + row)  # raises the cell's own message
        raise AssertionError(f"row {first_row + row}, column {column.name!r} was refused and then accepted")
    features = schema.features
    rows = len(coded[schema.condition])
    return TableData(
        _stack([coded[c.name] for c in features if c.type == "categorical"], _code_type(schema), rows),
        _stack([coded[c.name] for c in features if c.type == "continuous"], np.float32, rows),
        coded[schema.condition].astype(np.int32), schema, "")


def _category_codes(values, column: Column):
    """(codes [n] int64, the index of the first value the column refuses or None). Codes are looked up by the value
    itself and its type (3 and 3.0 and True are different cells), each distinct value checked once."""
    lookup = {(str, value): code for code, value in enumerate(column.values) if value != MISSING}
    codes = np.empty(len(values), np.int64)
    try:  # the common case, a CSV's strings that are all declared: one dictionary lookup a cell
        codes[:] = [lookup[(str, value)] for value in values]
        return codes, None
    except (KeyError, TypeError):
        pass
    for index, value in enumerate(values):
        try:
            key = (type(value), value)
            codes[index] = lookup[key]
            continue
        except KeyError:
            pass
        except TypeError:  # unhashable: checked on its own
            key = None
        try:
            code = _category_code(value, column, index)
        except DataError:
            return codes, index
        codes[index] = code
        if key is not None and not _is_missing(value):  # missing values (NaN, pandas' NA) are checked each time
            lookup[key] = code
    return codes, None


def _scaled_numbers(values, column: Column):
    """(values scaled from the declared bounds to [-1, 1] as float32 [n], clipped, and the index of the first value
    that is not a finite number or None)."""
    try:
        numbers = np.asarray(values, np.float64)
        if numbers.ndim != 1:
            raise ValueError
    except (TypeError, ValueError):
        numbers = np.empty(len(values))
        for index, value in enumerate(values):
            try:
                numbers[index] = _number(value, column, index)
            except DataError:
                return None, index
    finite = np.isfinite(numbers)
    if not finite.all():
        return None, int(np.argmin(finite))
    scaled = 2 * (numbers - column.min) / (column.max - column.min) - 1
    return np.clip(scaled, -1, 1).astype(np.float32), None


def _number(value, column: Column, number: int) -> float:
    if _is_missing(value):
        raise DataError(f"row {number}, column {column.name!r}: the value is missing, and a continuous column has no "
                        "category for it. Fill it in before training (with a public value: one computed from the "
                        "private rows, such as their mean, is itself a release), or declare the column categorical "
                        "with \"missing\": true.")
    try:
        number_value = float(value)
    except (TypeError, ValueError):
        raise DataError(f"row {number}, column {column.name!r}: {value!r} is not a number.") from None
    if not np.isfinite(number_value):
        raise DataError(f"row {number}, column {column.name!r}: {value!r} is not a finite number.")
    return number_value


def _is_missing(value) -> bool:
    """An empty CSV cell, None, NaN, or pandas' NA/NaT."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def _category_code(value, column: Column, number: int) -> int:
    if _is_missing(value):
        if not column.missing:
            raise DataError(f"row {number}, column {column.name!r}: the value is missing. Declare \"missing\": true for "
                            f"{column.name!r} in the schema to keep missing values as a category of their own, or fill "
                            "them in before training.")
        return len(column.values) - 1
    texts = [str(value)]
    if isinstance(value, float) and value.is_integer():  # 3.0 from a pandas column of integers with gaps
        texts.append(str(int(value)))
    for text in texts:
        if text in column.values and text != MISSING:
            return column.values.index(text)
    declared = [v for v in column.values if v != MISSING]
    raise DataError(f"row {number}, column {column.name!r}: {value!r} is not one of the declared values "
                    f"{declared[:10]}{'...' if len(declared) > 10 else ''}.")


def frame_columns(frame, schema: TableSchema) -> dict:
    """A pandas DataFrame's columns that the schema declares, as lists of Python values, after checking that it has
    every one."""
    absent = [column.name for column in schema.columns if column.name not in frame.columns]
    if absent:
        raise DataError(f"the DataFrame has no column {absent[0]!r} declared in the schema (it has "
                        f"{list(frame.columns)[:20]}).")
    if not len(frame):
        raise DataError("the table has no rows.")
    return {column.name: frame[column.name].tolist() for column in schema.columns}


def is_frame(dataset) -> bool:
    """True for a pandas DataFrame (recognized by its interface: pandas is not a dependency)."""
    return hasattr(dataset, "to_dict") and hasattr(dataset, "columns") and hasattr(dataset, "iloc")


def table_codes(data: TableData, bins: int) -> np.ndarray:
    """[N, columns] integer codes in the schema's column order, condition included, in the smallest unsigned type
    that holds them: a category's index, or a number's bin among `bins` equal bins over its declared bounds."""
    dtype = np.promote_types(_code_type(data.schema), np.min_scalar_type(max(bins - 1, 0)))
    codes = np.empty([len(data), len(data.schema.columns)], dtype)
    category = number = 0
    for index, column in enumerate(data.schema.columns):
        if column.name == data.schema.condition:
            codes[:, index] = data.labels
        elif column.type == "categorical":
            codes[:, index] = data.categories[:, category]
            category += 1
        else:
            codes[:, index] = np.clip(((data.numbers[:, number] + 1) / 2 * bins).astype(int), 0, bins - 1)
            number += 1
    return codes


def load_table(name: str = "breast_cancer", data_dir=None, schema=None, frame=None) -> TableData:
    """A bundled table by name, a CSV (`data_dir` and `schema`), or a DataFrame (`frame` and `schema`)."""
    if frame is not None or name == DATAFRAME:
        if frame is None:
            raise DataError("this run trained on a DataFrame, which tfdpgen does not keep: pass the same DataFrame "
                            "again (for example evaluate_run(run, data=frame)).")
        if schema is None:
            raise DataError("a DataFrame needs schema=: its columns' declared categories and numeric bounds (a dict "
                            "in the JSON schema's layout, a path, or a TableSchema).")
        schema = TableSchema.of(schema)
        data = encode_columns(frame_columns(frame, schema), schema)
        name = DATAFRAME
    elif schema is not None or (data_dir is not None and name not in TABLES):
        if data_dir is None or schema is None:
            raise DataError("a CSV table needs both --data-dir (the .csv file, or a folder with one) and --schema (its "
                            "JSON schema with declared categories and bounds).")
        schema = TableSchema.of(schema)
        data = read_csv(_single_csv(data_dir), schema)
    elif name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer
        schema = TableSchema.load(os.path.join(SCHEMAS, "breast_cancer.json"))
        bunch = load_breast_cancer()
        names = [column.name for column in schema.features]
        data = encode([dict(zip(names, values), diagnosis=str(bunch.target_names[target]))
                       for values, target in zip(bunch.data, bunch.target)], schema)
    elif name == "adult":
        if data_dir is None:
            raise DataError("adult is not bundled: give --data-dir with adult.csv and adult-domain.json "
                            "(../shared/data/adult).")
        with open(os.path.join(data_dir, "adult-domain.json")) as f:
            domain = json.load(f)
        schema = TableSchema([Column(column, "categorical", [str(v) for v in range(size)])
                              for column, size in domain.items()], "income>50K")
        data = read_csv(os.path.join(data_dir, "adult.csv"), schema)
    else:
        raise DataError(f"unknown table {name!r}: choose one of {TABLES}, or give --data-dir and --schema.")
    data.name = name
    return data


def table_name(data_dir) -> str:
    """The name a user's CSV goes by in a run's records, its messages and its directory: the file's name without
    ".csv", or the folder's name."""
    name = os.path.basename(os.path.normpath(data_dir))
    name = name[:-len(".csv")] if name.endswith(".csv") else name
    return name if name and name != DATAFRAME else "table"


def _single_csv(data_dir):
    if os.path.isfile(data_dir) and data_dir.endswith(".csv"):
        return data_dir
    if not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir} is neither a .csv file nor a directory.")
    files = sorted(f for f in os.listdir(data_dir) if f.endswith(".csv"))
    if len(files) != 1:
        raise DataError(f"--data-dir {data_dir} must hold exactly one .csv file, found {files or 'none'}.")
    return os.path.join(data_dir, files[0])


CSV_CHUNK_ROWS = 100_000


def read_csv(path, schema: TableSchema, chunk_rows: int = CSV_CHUNK_ROWS) -> TableData:
    """The CSV at `path` (a header row, then one record a row) coded by `schema`, `chunk_rows` rows at a time: what
    stays in memory is the compact table and one chunk's strings, never a Python object per cell of the whole file
    (ten million rows of Adult's 14 columns take about 150 MB). Columns the schema does not declare are skipped; a
    short row's missing cells are missing values."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty: a CSV table starts with a header row naming its columns.")
        absent = [column.name for column in schema.columns if column.name not in header]
        if absent:
            raise DataError(f"{path} has no column {absent[0]!r} declared in the schema (its header names "
                            f"{header[:20]}).")
        where = {column.name: header.index(column.name) for column in schema.columns}
        parts, first_row = [], 0
        while True:
            chunk = list(itertools.islice(reader, chunk_rows))
            if not chunk:
                break
            if any(len(row) < len(header) for row in chunk):
                chunk = [row + [""] * (len(header) - len(row)) for row in chunk]
            columns = {name: [row[index] for row in chunk] for name, index in where.items()}
            parts.append(encode_columns(columns, schema, first_row))
            first_row += len(chunk)
    if not parts:
        raise DataError(f"{path} has a header and no rows.")
    return TableData(*(np.concatenate([getattr(part, field) for part in parts])
                       for field in ("categories", "numbers", "labels")), schema, "")
