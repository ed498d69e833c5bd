"""annotate.rendering: untrusted Markdown comes out as inert, allowlisted HTML."""

from html.parser import HTMLParser

import pytest

from annotate.rendering import render_markdown, sanitize_html

XSS_CORPUS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<div hx-get="/accounts/logout/" hx-trigger="load">htmx</div>',
    '<button hx-post="/x" hx-trigger="click">b</button>',
    "![x](http://evil.example/pixel.png)",
    "![x](javascript:alert(1))",
    '![x](http://evil.example/a.png "title onerror=alert(1)")',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://evil.example"></iframe>',
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![d](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<style>body{display:none}</style>",
    '<a href="https://ok.example" onclick="alert(1)" data-x="1" style="color:red">ok</a>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<form action=/x><input name=a></form>",
    "<meta http-equiv=refresh content='0;url=https://evil.example'>",
    "<base href='https://evil.example/'>",
    '<object data="x.swf"></object><embed src="x">',
    "<details open ontoggle=alert(1)>",
    "[x](vbscript:msgbox(1))",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
]

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
}  # fmt: skip
ALLOWED_ATTRS = {"href", "title", "class", "start", "rel", "target"}


class _Elements(HTMLParser):
    """Every element and attribute the browser would build from the HTML (text is ignored)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


@pytest.mark.parametrize("source", XSS_CORPUS)
def test_xss_corpus_is_inert(source):
    html = str(render_markdown(source))
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        assert set(attrs) <= ALLOWED_ATTRS, (attrs, html)
        if "href" in attrs:
            assert attrs["href"].lower().startswith(("http://", "https://", "mailto:")), html
            assert attrs.get("rel") == "noopener noreferrer nofollow", html
    assert "<script" not in html.lower()


def test_raw_html_is_shown_as_text():
    html = str(render_markdown("Hello <script>alert(1)</script> world"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_images_never_load_remote_content():
    html = str(render_markdown("![a cat](https://evil.example/cat.png)"))
    assert "<img" not in html
    assert "[image: a cat]" in html
    assert 'href="https://evil.example/cat.png"' in html  # a plain link the labeler may choose to follow
    html = str(render_markdown("![boom](javascript:alert(1))"))
    assert "<img" not in html and 'href="javascript' not in html
    html = str(render_markdown("![pix](data:image/png;base64,AAAA)"))
    assert "<img" not in html and "data:" not in html.split("[image")[0]
    assert "[image: pix]" in html


def test_links_are_safe_and_open_in_a_new_tab():
    html = str(render_markdown("[docs](https://example.org/a?b=1) and [mail](mailto:a@example.org)"))
    assert 'href="https://example.org/a?b=1"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'target="_blank"' in html
    assert 'href="mailto:a@example.org"' in html
    html = str(render_markdown("[x](javascript:alert(1)) [y](ftp://example.org/f) [z](file:///etc/passwd)"))
    assert "href" not in html


def test_markdown_features_survive():
    source = "# Title\n\n- one\n- two\n\n1. a\n2. b\n\n> quote\n\n**bold** *em* ~~del~~ `code`\n\n```python\nprint('hi')\n```\n"
    html = str(render_markdown(source))
    for fragment in (
        "<h1>Title</h1>",
        "<ul>",
        "<ol>",
        "<blockquote>",
        "<strong>bold</strong>",
        "<em>em</em>",
        "<code>code</code>",
        '<pre><code class="language-python">',
    ):
        assert fragment in html, fragment
    assert "<del>del</del>" in html or "<s>del</s>" in html


def test_tables_keep_alignment_as_a_class_not_a_style():
    html = str(render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |\n"))
    assert "<table>" in html
    assert 'class="md-align-left"' in html and 'class="md-align-right"' in html
    assert "style" not in html


def test_code_class_is_restricted_to_language_names():
    html = sanitize_html('<pre><code class="language-js evil other">x</code></pre>')
    assert 'class="language-js"' in html
    assert "evil" not in html
    html = sanitize_html('<span class="md-image injected">x</span><p class="x">y</p>')
    assert 'class="md-image"' in html and "injected" not in html and "<p class" not in html


def test_empty_and_none():
    assert str(render_markdown("")) == ""
    assert str(render_markdown(None)) == ""
