"""Markdown for untrusted text (model responses, prompts, guidelines) -> inert, sanitized HTML.

Two layers, so that a mistake in one is caught by the other:

1. markdown-it-py in CommonMark mode with raw HTML off: ``<script>`` in the source comes out as
   the text ``&lt;script&gt;``. Images are never rendered as ``<img>`` (a remote image would leak the
   labeler's IP and the page's CSP blocks it anyway): an image becomes its alt text, with a plain
   link when its address is http(s). Table alignment becomes a class (the CSP forbids ``style=""``).
2. nh3 (ammonia) with a small allowlist of tags and attributes: no ``on*``, ``style``, ``hx-*``,
   ``data-*``, ``id`` or ``src`` attribute survives; links keep only http, https and mailto
   addresses, open in a new tab and carry ``rel="noopener noreferrer nofollow"``.

Before both, bidirectional override, embedding and isolate characters (U+202A-U+202E,
U+2066-U+2069) are replaced by their code point in plain text (``⟦U+202E⟧``): obeyed, they show a
text other than the one stored ("Trojan Source": ``abc`` + U+202E + ``evil`` reads "abclive"), and
a labeler must judge what the model wrote. Right-to-left text and the LRM/RLM marks are untouched.
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
        "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "class"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"class"},
    "td": {"class"},
    "span": {"class"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

_SAFE_CLASSES = {
    "th": re.compile(r"md-align-(left|right|center)"),
    "td": re.compile(r"md-align-(left|right|center)"),
    "code": re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}"),
    "span": re.compile(r"md-image"),
    "a": re.compile(r"md-image-link"),
}
_ALIGN = re.compile(r"text-align:\s*(left|right|center)")
_HTTP_URL = re.compile(r"^https?://", re.IGNORECASE)
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def show_bidi_controls(text: str) -> str:
    """``text`` with each bidirectional override/embedding/isolate character written as its code
    point (``⟦U+202E⟧``), so that it is seen instead of reordering what is shown around it."""
    return _BIDI_CONTROLS.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr != "class":
        return value
    pattern = _SAFE_CLASSES.get(tag)
    if pattern is None:
        return None
    kept = [c for c in value.split() if pattern.fullmatch(c)]
    return " ".join(kept) or None


def _render_image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env).strip() or "image"
    src = str(token.attrGet("src") or "")
    label = f'<span class="md-image">[image: {escape(alt)}]</span>'
    if _HTTP_URL.match(src):
        return f'<a class="md-image-link" href="{escape(src)}">{label}</a>'
    return label


def _align_to_class(state) -> None:
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = token.attrGet("style")
            if style:
                token.attrs.pop("style", None)
                match = _ALIGN.search(str(style))
                if match:
                    token.attrSet("class", f"md-align-{match.group(1)}")


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # breaks: a single newline is a line break, as people who type text (and models) mean it
    # (a haiku stays three lines); CommonMark would join the lines into one paragraph.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image)
    md.core.ruler.push("prefhub_table_align", _align_to_class)
    return md


def sanitize_html(html: str) -> str:
    """The nh3 layer on its own (for HTML that did not come from our Markdown renderer)."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "svg",
            "math",
            "template",
            "noscript",
        },
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
        generic_attribute_prefixes=set(),
    )


def render_markdown(text: str | None) -> SafeString:
    """Untrusted Markdown -> sanitized HTML, safe to put in a template without escaping."""
    if not text:
        return mark_safe("")
    html = _markdown().render(show_bidi_controls(str(text)))
    return mark_safe(sanitize_html(html))  # noqa: S308 - sanitized by nh3 just above
