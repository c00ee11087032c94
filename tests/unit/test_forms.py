"""Form validation against the params structs: coercion, ranges, the 422 wording."""

from __future__ import annotations

from contracts.params import SurfaceParams, TemplateParams
from services.gateway.forms import distinct_names, parse_params, safe_filename, validate_settings


def test_defaults_fill_what_is_missing():
    defaults = TemplateParams(threshold=0.9, max_results=5)
    params, errors = parse_params(TemplateParams, {"method": "TM_SQDIFF"}, defaults)
    assert errors == [] and params == TemplateParams(method="TM_SQDIFF", threshold=0.9, max_results=5)


def test_coercion_from_form_strings():
    params, errors = parse_params(
        TemplateParams, {"threshold": " 0.85 ", "max_results": "10", "use_grayscale": "False"}, TemplateParams())
    assert errors == [] and params == TemplateParams(threshold=0.85, max_results=10, use_grayscale=False)
    assert parse_params(TemplateParams, {"max_results": "10.0"}, TemplateParams())[0].max_results == 10


def test_bounds_and_types():
    _, errors = parse_params(TemplateParams, {"threshold": "1.5", "max_results": "x", "use_grayscale": "2"}, TemplateParams())
    assert [(e.type, e.loc, e.input) for e in errors] == [
        ("value_error", ["body", "threshold"], 1.5),
        ("int_parsing", ["body", "max_results"], "x"),
        ("bool_parsing", ["body", "use_grayscale"], "2"),
    ]
    assert errors[0].msg == "Input should be less than or equal to 1.0"
    _, errors = parse_params(TemplateParams, {"threshold": "nan"}, TemplateParams())
    assert errors[0].type == "finite_number"


def test_strictly_positive_bound():
    _, errors = parse_params(SurfaceParams, {"icp_tolerance": "0"}, SurfaceParams())
    assert errors[0].msg == "Input should be greater than 0.0"


def test_settings_documents():
    params, errors = validate_settings(TemplateParams, {"threshold": 0.7})
    assert errors == [] and params == TemplateParams(threshold=0.7)
    assert validate_settings(TemplateParams, {"colour": 1})[1][0].type == "extra_forbidden"
    assert validate_settings(TemplateParams, [1])[1][0].type == "dict_type"


def test_safe_filenames():
    assert safe_filename("../../etc/passwd", "x") == "passwd"
    assert safe_filename("C:\\Users\\me\\shot 1.png", "x") == "shot_1.png"
    assert safe_filename("..", "image.png") == "image.png"
    assert safe_filename(None, "image.png") == "image.png"
    assert safe_filename("a" * 300 + ".png", "x") == "a" * 96 + ".png"
    assert distinct_names("a.png", "a.png") == ("a.png", "a_2.png")
