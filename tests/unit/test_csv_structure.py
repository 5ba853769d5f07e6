"""check_csv_structure counts the fields of every line, commas inside quoted text (escaped quotes
included) not counted, and names the first row whose width differs from the header's."""

import pytest

from focus_platform.sources.common import SourceFormatError, check_csv_structure

HEADER = 'Id,Tags,Cost\n'
QUOTED = ['1,"{""a"":""x,y"",""b"":""""}",0.5\n', '2,"plain, with a comma",1\n', '3,,2\n', '4,"""",3\n']


def write(tmp_path, lines):
    path = tmp_path / "file.csv"
    path.write_text(HEADER + "".join(lines))
    return str(path)


def test_quoted_commas_and_escaped_quotes_are_one_field(tmp_path):
    check_csv_structure(write(tmp_path, QUOTED + ["\n", "   \n"]), "file.csv")  # blank lines are not rows


@pytest.mark.parametrize(("line", "row", "fields", "kind"), [
    ('5,"{""a"":""x,y""}"\n', 5, 2, "truncated file"),
    ('5,"a,b",1,extra\n', 5, 4, "malformed CSV"),
    ('5,"""x"", y"\n', 5, 2, "truncated file"),
])
def test_the_first_row_of_another_width_is_named(tmp_path, line, row, fields, kind):
    with pytest.raises(SourceFormatError) as error:
        check_csv_structure(write(tmp_path, QUOTED + [line, '6,"ok",1\n']), "file.csv")
    assert f"{kind} (data row {row} has {fields} fields, the header 3" in str(error.value)


def test_a_quoted_line_break_is_counted_by_the_csv_reader(tmp_path):
    lines = ['1,"two\nlines, one field",1\n', '2,"x"\n']
    with pytest.raises(SourceFormatError, match=r"data row 2 has 2 fields, the header 3"):
        check_csv_structure(write(tmp_path, lines), "file.csv")


def test_a_row_of_another_width_before_a_quoted_line_break_is_named(tmp_path):
    lines = ['1,"x",1\n', '2,"y"\n', '3,"two\nlines",1\n']
    with pytest.raises(SourceFormatError, match=r"truncated file \(data row 2 has 2 fields, the header 3"):
        check_csv_structure(write(tmp_path, lines), "file.csv")


def test_quoted_line_breaks_in_a_well_formed_file_pass(tmp_path):
    check_csv_structure(write(tmp_path, ['1,"two\nlines, one field",1\n', '2,"x",1\n']), "file.csv")
