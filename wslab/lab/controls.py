"""What every panel's controls share: room for their words, when they apply, their help.

What lives here: :func:`text_px`, a conservative width of a line of widget text (13 px
DejaVu Sans, the font Chromium on Linux draws JupyterLab's widgets with, plus a margin for
other fonts); the layout constants of the controls grid (:data:`CONTROL_PX`: the narrowest
cell a control gets); :func:`fit_descriptions`, which gives a panel's controls one
description width that holds the longest of their descriptions; :func:`layout_problems`,
which lists every label that would be cut (a description wider than its width, a dropdown
option wider than its box, a checkbox label, a button label, a slider readout); :class:`When`,
one row of a panel's table of "this control applies only when that field has one of these
values"; and :func:`walk`, every widget inside a widget.

Why a model of the font instead of measuring in the browser: labels are set in Python,
so a test over every panel's controls can check them without a browser, and a truncated
label ("permessage-defla", "max_connections per w...") fails it before anyone sees it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from wslab.config import TuningConfig

_CHARS = (" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
          "abcdefghijklmnopqrstuvwxyz{|}~\u00b5\u00d7\u2026\u2013\u2014\u2192\u2265\u2264"
          "\u00b7\u00b2")
_ADVANCE = (
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716,
    1087, 2048, 1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 604, 604, 1343, 1141, 1767,
    1532, 1612, 1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799, 690,
    799, 1716, 1024, 1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186,
    569, 1995, 1298, 1253, 1300, 1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075,
    1303, 690, 1303, 1716, 1303, 1716, 2048, 1024, 2048, 1716, 1716, 1716, 651, 821,
)
"""DejaVu Sans advance widths (units of 1/2048 em) of :data:`_CHARS`, read from its hmtx."""
_WIDTH = dict(zip(_CHARS, _ADVANCE, strict=True))
FONT_PX = 13
"""``--jp-widgets-font-size`` (``--jp-ui-font-size1``)."""
SAFETY = 1.15
"""Head room for fonts wider than DejaVu Sans and for sub-pixel rounding."""

CONTROL_PX = 360
"""The narrowest grid cell a control gets (``minmax(CONTROL_PX, 1fr)`` columns)."""
CONTROL_SHARE = 0.98
"""A control's width as a share of its cell."""
LABEL_GAP_PX = 8
"""The margin right of a description label."""
DEFAULT_DESCRIPTION_PX = 80
"""``--jp-widgets-inline-label-width``: a description's width when none is set."""
SELECT_PAD_PX = 28
"""A dropdown's left padding, right padding (its arrow) and borders."""
CHECKBOX_PX = 28
"""A checkbox's box and the margin after it."""
BUTTON_PAD_PX = 24
"""A button's left and right padding and borders."""
ICON_PX = 22
"""A button's icon and the margin after it."""
READOUT_PX = 148
"""A horizontal slider's widest readout (``--jp-widgets-inline-width-short``)."""
SLIDER_TRACK_PX = 90
"""The shortest slider track a control may be left with."""


SECTIONS = ("batching", "compression", "scaling", "link")
"""The config's sections: a dotted name starting with one is a config field."""


@dataclass(slots=True)
class Binding:
    """One widget tied to one or more config fields or panel parameters.

    Attributes:
        widget: The ipywidgets control.
        fields: Dotted config fields (``"compression.mem_level"``) or parameter names.
        to_value: Maps the widget's value to the stored value (identity by default).
        from_value: Maps a stored value back to the widget's value.
    """

    widget: Any
    fields: tuple[str, ...]
    to_value: Callable[[Any], Any]
    from_value: Callable[[Any], Any]


def identity(value: Any) -> Any:
    """The value itself (a binding's default mapping)."""
    return value


def is_config_field(name: str) -> bool:
    """True for a dotted config field such as ``"batching.interval_ms"``."""
    return name.split(".", 1)[0] in SECTIONS and "." in name


def config_value(config: TuningConfig, dotted: str) -> Any:
    """The value of a dotted field of ``config``."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def text_px(text: str) -> float:
    """A conservative width in pixels of ``text`` in one line of widget text."""
    units = sum(_WIDTH.get(ch, 2048) for ch in text)
    return units * FONT_PX / 2048 * SAFETY


def control_px() -> float:
    """The width of a control in the narrowest cell of the controls grid."""
    return CONTROL_PX * CONTROL_SHARE


def described(widget: Any) -> bool:
    """True for a widget whose description is a label left of it.

    Not a button's (inside it) nor a checkbox's (right of the box; an indented checkbox
    keeps an empty label's width on its left).
    """
    if isinstance(widget, W.Button | W.HTML | W.Label | W.Checkbox):
        return False
    return bool(getattr(widget, "description", ""))


def description_px(widget: Any) -> float:
    """The width of ``widget``'s description label in pixels."""
    width = str(getattr(widget.style, "description_width", "") or "")
    if width.endswith("px"):
        return float(width[:-2])
    return float(DEFAULT_DESCRIPTION_PX)


def fit_descriptions(widgets: Iterable[Any], *, step: int = 10) -> int:
    """Give every described widget one description width that holds the longest label.

    Indented checkboxes get the same width as their indent, so their boxes line up with
    the other controls. Returns the width (px, rounded up to ``step``).
    """
    items = list(widgets)
    described_ = [w for w in items if described(w)]
    if not described_:
        return 0
    need = max(text_px(w.description) for w in described_)
    width = int(math.ceil(need / step) * step)
    for w in items:
        if described(w) or (isinstance(w, W.Checkbox) and w.indent):
            w.style.description_width = f"{width}px"
    return width


def _labels(widget: Any) -> list[str]:
    """The option labels of a selection widget ([] for others)."""
    labels = getattr(widget, "_options_labels", None)
    return [str(x) for x in labels] if labels is not None else []


def _px(value: Any) -> float | None:
    text = str(value or "")
    return float(text[:-2]) if text.endswith("px") else None


def layout_problems(widget: Any, *, width: float | None = None) -> list[str]:
    """What of ``widget``'s text would be cut when it is ``width`` px wide.

    Args:
        widget: A control (slider, dropdown, checkbox, button, text box).
        width: Its width (default: its layout width in px, else :func:`control_px`).
    """
    name = f"{type(widget).__name__} {getattr(widget, 'description', '')!r}"
    own = _px(getattr(widget.layout, "width", None))
    room = width if width is not None else own if own is not None else control_px()
    problems: list[str] = []
    if isinstance(widget, W.Button):
        # A fixed width cuts a label as soon as the font, the icon or the page differ from
        # what it was sized for ("Compute heat..." in a 200 px button): buttons size to
        # their labels.
        if widget.description and widget.layout.width != "auto":
            need = text_px(widget.description) + BUTTON_PAD_PX + (ICON_PX if widget.icon
                                                                  else 0)
            problems.append(f"{name}: a fixed {widget.layout.width or 'default'} width for a "
                            f"{need:.0f} px label (give it width 'auto')")
        return problems
    left = 0.0
    if described(widget):
        label = description_px(widget)
        need = text_px(widget.description)
        if need > label:
            problems.append(f"{name}: description needs {need:.0f} px, has {label:.0f} px")
        left = label + LABEL_GAP_PX
    value_px = room - left
    if isinstance(widget, W.Checkbox):
        if widget.indent:
            value_px -= description_px(widget) + LABEL_GAP_PX
        need = text_px(widget.description) + CHECKBOX_PX
        if need > value_px:
            problems.append(f"{name}: the label needs {need:.0f} px, has {value_px:.0f} px")
    elif isinstance(widget, W.Dropdown):
        widest = max((text_px(x) for x in _labels(widget)), default=0.0) + SELECT_PAD_PX
        if widest > value_px:
            problems.append(f"{name}: an option needs {widest:.0f} px, the box has "
                            f"{value_px:.0f} px")
    elif isinstance(widget, W.SelectionSlider | W.IntSlider | W.FloatSlider
                    | W.FloatLogSlider):
        readouts = _labels(widget) or [_number_readout(widget)]
        widest = max(text_px(x) for x in readouts)
        if widest > READOUT_PX:
            problems.append(f"{name}: a readout needs {widest:.0f} px, has {READOUT_PX} px")
        track = value_px - min(max(widest, READOUT_PX / 2), READOUT_PX)
        if track < SLIDER_TRACK_PX:
            problems.append(f"{name}: the slider track is only {track:.0f} px")
    return problems


def _number_readout(widget: Any) -> str:
    """The widest readout of a numeric slider (its bounds in its format)."""
    fmt = getattr(widget, "readout_format", "d") or "d"
    values = (widget.min, widget.max)
    if isinstance(widget, W.FloatLogSlider):
        values = (widget.base ** widget.min, widget.base ** widget.max)
    try:
        shown = [format(v, fmt) for v in values]
    except (TypeError, ValueError):
        shown = [str(v) for v in values]
    return max(shown, key=len)


def walk(widget: Any) -> Iterator[Any]:
    """``widget`` and every widget inside it, depth first."""
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from walk(child)


def is_control(widget: Any) -> bool:
    """True for what a user operates: a value widget with a description, or a button."""
    if isinstance(widget, W.Button):
        return True
    return isinstance(widget, W.ValueWidget) and not isinstance(widget, W.HTML | W.Label
                                                                 | W.IntProgress)


@dataclass(frozen=True, slots=True)
class When:
    """A control applies only while ``field`` has one of ``values`` (a row of the table).

    Attributes:
        field: A dotted config field or a panel parameter (what :meth:`Panel.get` reads).
        values: The values under which the control means something.
        label: How the tooltip names the field (default: its last part).
    """

    field: str
    values: tuple[Any, ...]
    label: str = ""

    def holds(self, get: Callable[[str], Any]) -> bool:
        """True when the control applies (``get`` reads a field's current value)."""
        return get(self.field) in self.values

    def text(self) -> str:
        """``"only with strategy time or hybrid"`` (added to the control's tooltip)."""
        name = self.label or self.field.rsplit(".", 1)[-1]
        shown = [str(v) for v in self.values]
        options = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
        return f"only with {name} {options}"
