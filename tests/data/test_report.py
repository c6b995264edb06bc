"""Report: counts, problem formatting, summary line."""

from rtdet.data.report import Problem, Report


def test_problem_names_file_and_line():
    assert str(Problem("a.txt", "bad", 3)) == "a.txt:3: bad"
    assert str(Problem("a.json", "bad")) == "a.json: bad"


def test_report_format_lists_everything():
    r = Report(name="x", images=2, boxes=3, empty_images=1, skipped_images=1)
    r.per_class.update([0, 0, 1])
    r.add("l.txt", "class index 7 out of range 0..1", 2)
    text = r.format(["cat", "dog"])
    assert "images: 2" in text and "cat" in text and "l.txt:2: class index 7" in text
    assert not r.ok and "skipped 1 bad images" in r.summary()


def test_warnings_are_listed_but_do_not_fail():
    r = Report(name="x", images=1, boxes=1)
    r.per_class.update([0])
    r.warn("a.jpg", "box 0 (cat) is 1 x 1 px: kept; check the label")
    assert r.ok  # a warning keeps the label: the check does not fail
    text = r.format(["cat"])
    assert "warnings (kept): 1" in text and "a.jpg: box 0 (cat) is 1 x 1 px" in text
    assert any("1 suspicious labels" in n for n in r.notes(["cat"], few=1))
