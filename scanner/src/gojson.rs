//! Image JSON documents read the way Go's `encoding/json` reads them.
//!
//! Container runtimes decode image configs, manifests, indexes and
//! docker-archive `manifest.json` with Go's `encoding/json` into Go structs.
//! This module parses a document into a tree that keeps every key (duplicates
//! and order included), then canonicalises it against a small [`Ty`] schema of
//! those structs, and hands the result to the serde structs the rest of
//! imgscan uses.
//!
//! # Runtime fidelity
//!
//! - **Keys of struct-typed objects match case-insensitively.** Go
//!   encoding/json decode.go `object()` looks a key up by exact field name
//!   first, then by a case fold (Go ≤ 1.20 fold.go `equalFoldRight` /
//!   `asciiEqualFold`; Go ≥ 1.21 fold.go `foldName`). So `"user"` sets
//!   `User`, and `"Layers"` sets `layers`. imgscan maps keys to their Go
//!   field the same way.
//! - **The last of several keys for one field wins** in Go; serde and most
//!   other readers keep the first or fail. An object where two keys reach the
//!   same field (`"User"` and `"user"`, or `"User"` twice) is refused with
//!   [`Error::Ambiguous`]: runtimes would run with a value other tools show.
//! - **Go versions fold non-ASCII letters differently.** `ſ` (U+017F) folds
//!   to `s` and `K` (U+212A) to `k` in every version; `ı` (U+0131) and `İ`
//!   (U+0130) fold to `i` only in the Go versions whose `foldName` used
//!   `unicode.ToUpper(unicode.ToLower(r))` (newer fold.go `foldRune` walks
//!   `unicode.SimpleFold` and does not). A key whose field depends on the Go
//!   version is refused.
//! - **Unknown keys are ignored**, as Go does; their values only need to be
//!   valid JSON.
//! - **Map-typed values** (`Labels`, `ExposedPorts`, `annotations`) keep their
//!   keys exactly; a repeated key keeps its last value, as a Go map does.
//! - **Types are Go's.** A value Go cannot decode into the field's type (a
//!   number for `User`, a string for `layers`, `1.5` for `size`) makes
//!   `json.Unmarshal` fail, so no runtime runs the image: refused as
//!   malformed. `null` leaves a field at its zero value. moby's
//!   `strslice.StrSlice` (`Entrypoint`, `Cmd`, `Shell`) takes a string or a
//!   list; `time.Time` (`created`) is decoded from the raw string by
//!   `Time.UnmarshalJSON` (RFC 3339).
//! - **Text Go repairs is refused.** Go replaces invalid UTF-8 and lone
//!   surrogate escapes with U+FFFD; imgscan refuses such documents rather
//!   than guess. Trailing data after the document is refused (`json.Unmarshal`
//!   rejects it; `json.Decoder` ignores it).
//! - **Schemas are unions** of the Go structs runtimes decode into:
//!   image-spec `specs-go/v1` `Image`, `ImageConfig`, `RootFS`, `History`,
//!   `Platform`, `Descriptor`, `Manifest`, `Index`; moby
//!   `daemon/internal/image` `Image`/`V1Image` and `api/types/container`
//!   `Config`; the docker-archive `manifestItem` of moby
//!   `image/tarexport`, containers/image `docker/internal/tarfile`
//!   `ManifestItem` and containerd `images/archive/importer.go`. A key any of
//!   them knows is matched and type-checked.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deepest nesting accepted (Go allows 10000; image documents nest a few
/// levels, and a shallow limit keeps the recursive parser off the stack's end).
const MAX_DEPTH: usize = 128;

/// A parsed JSON value that keeps what Go's decoder sees: every object key in
/// order (duplicates too), numbers as written, and whether a string had
/// escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped; `raw` is true when it was written without escapes.
    Str {
        /// The decoded text.
        value: String,
        /// No backslash escapes (the raw bytes are the text).
        raw: bool,
    },
    /// An array.
    Array(Vec<Self>),
    /// An object: keys in document order, duplicates kept.
    Object(Vec<(String, Self)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::Str { .. } => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

/// The Go type a value is decoded into.
#[derive(Debug)]
pub enum Ty {
    /// `string` (and string kinds such as `digest.Digest`).
    Str,
    /// `bool`.
    Bool,
    /// `int`, `int64`, `time.Duration`.
    Int,
    /// `time.Time` / `*time.Time`.
    Time,
    /// `[]byte` (base64 text).
    Bytes,
    /// moby `strslice.StrSlice`: a string or a list of strings.
    StrSlice,
    /// `[]T`.
    List(&'static Self),
    /// `map[string]T`.
    Map(&'static Self),
    /// A struct: its JSON field names and types.
    Struct(&'static [(&'static str, &'static Self)]),
}

// ---- The schemas ---------------------------------------------------------

static STR: Ty = Ty::Str;
static STRUCT_EMPTY: Ty = Ty::Struct(&[]);
static STR_LIST: Ty = Ty::List(&STR);

/// moby `container.HealthConfig` (docker-image-spec `HealthcheckConfig`).
static HEALTH: Ty = Ty::Struct(&[
    ("Test", &Ty::List(&STR)),
    ("Interval", &Ty::Int),
    ("Timeout", &Ty::Int),
    ("StartPeriod", &Ty::Int),
    ("StartInterval", &Ty::Int),
    ("Retries", &Ty::Int),
]);

/// image-spec `ImageConfig` ∪ moby `container.Config`.
static CONTAINER: Ty = Ty::Struct(&[
    ("Hostname", &Ty::Str),
    ("Domainname", &Ty::Str),
    ("User", &Ty::Str),
    ("AttachStdin", &Ty::Bool),
    ("AttachStdout", &Ty::Bool),
    ("AttachStderr", &Ty::Bool),
    ("ExposedPorts", &Ty::Map(&STRUCT_EMPTY)),
    ("Tty", &Ty::Bool),
    ("OpenStdin", &Ty::Bool),
    ("StdinOnce", &Ty::Bool),
    ("Env", &Ty::List(&STR)),
    ("Cmd", &Ty::StrSlice),
    ("Healthcheck", &HEALTH),
    ("ArgsEscaped", &Ty::Bool),
    ("Image", &Ty::Str),
    ("Volumes", &Ty::Map(&STRUCT_EMPTY)),
    ("WorkingDir", &Ty::Str),
    ("Entrypoint", &Ty::StrSlice),
    ("NetworkDisabled", &Ty::Bool),
    ("MacAddress", &Ty::Str),
    ("OnBuild", &Ty::List(&STR)),
    ("Labels", &Ty::Map(&STR)),
    ("StopSignal", &Ty::Str),
    ("StopTimeout", &Ty::Int),
    ("Shell", &Ty::StrSlice),
]);

/// image-spec `RootFS` ∪ moby `RootFS`.
static ROOTFS: Ty = Ty::Struct(&[("type", &Ty::Str), ("diff_ids", &Ty::List(&STR))]);

/// image-spec `History` ∪ moby `History`.
static HISTORY: Ty = Ty::Struct(&[
    ("created", &Ty::Time),
    ("created_by", &Ty::Str),
    ("author", &Ty::Str),
    ("comment", &Ty::Str),
    ("empty_layer", &Ty::Bool),
]);

/// An image config: image-spec `Image` (with its inline `Platform`) ∪ moby
/// `Image`/`V1Image`.
pub static IMAGE: Ty = Ty::Struct(&[
    ("created", &Ty::Time),
    ("author", &Ty::Str),
    ("architecture", &Ty::Str),
    ("os", &Ty::Str),
    ("os.version", &Ty::Str),
    ("os.features", &Ty::List(&STR)),
    ("variant", &Ty::Str),
    ("config", &CONTAINER),
    ("rootfs", &ROOTFS),
    ("history", &Ty::List(&HISTORY)),
    ("id", &Ty::Str),
    ("parent", &Ty::Str),
    ("comment", &Ty::Str),
    ("container", &Ty::Str),
    ("container_config", &CONTAINER),
    ("docker_version", &Ty::Str),
    ("Size", &Ty::Int),
]);

/// image-spec `Platform` ∪ distribution's manifest-list `PlatformSpec`.
static PLATFORM: Ty = Ty::Struct(&[
    ("architecture", &Ty::Str),
    ("os", &Ty::Str),
    ("os.version", &Ty::Str),
    ("os.features", &Ty::List(&STR)),
    ("variant", &Ty::Str),
    ("features", &Ty::List(&STR)),
]);

/// image-spec `Descriptor` ∪ distribution's `Descriptor`.
static DESCRIPTOR: Ty = Ty::Struct(&[
    ("mediaType", &Ty::Str),
    ("digest", &Ty::Str),
    ("size", &Ty::Int),
    ("urls", &Ty::List(&STR)),
    ("annotations", &Ty::Map(&STR)),
    ("data", &Ty::Bytes),
    ("platform", &PLATFORM),
    ("artifactType", &Ty::Str),
]);

/// A manifest or an index: image-spec `Manifest` ∪ `Index` (Docker's schema 2
/// manifest and manifest list have the same fields). Which one a document is
/// comes from its media type, decided after the keys are mapped.
pub static MANIFEST_OR_INDEX: Ty = Ty::Struct(&[
    ("schemaVersion", &Ty::Int),
    ("mediaType", &Ty::Str),
    ("artifactType", &Ty::Str),
    ("config", &DESCRIPTOR),
    ("layers", &Ty::List(&DESCRIPTOR)),
    ("manifests", &Ty::List(&DESCRIPTOR)),
    ("subject", &DESCRIPTOR),
    ("annotations", &Ty::Map(&STR)),
]);

/// One image of a docker-archive `manifest.json`.
static MANIFEST_ITEM: Ty = Ty::Struct(&[
    ("Config", &Ty::Str),
    ("RepoTags", &Ty::List(&STR)),
    ("Layers", &Ty::List(&STR)),
    ("Parent", &Ty::Str),
    ("LayerSources", &Ty::Map(&DESCRIPTOR)),
]);

/// A docker-archive `manifest.json`: `[]manifestItem`.
pub static DOCKER_MANIFEST: Ty = Ty::List(&MANIFEST_ITEM);

// ---- Parsing ---------------------------------------------------------------

/// Parses `bytes` as one JSON document (whitespace around it allowed).
/// Syntax errors are [`Error::Malformed`]; text Go would silently repair
/// (invalid UTF-8, lone surrogates) is [`Error::Ambiguous`].
pub fn parse(bytes: &[u8], what: &str) -> Result<Node> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::ambiguous(
            what,
            format!(
                "invalid UTF-8 at byte {}, which Go's encoding/json replaces with U+FFFD",
                e.valid_up_to()
            ),
        )
    })?;
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        what,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("data after the JSON document"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl Parser<'_> {
    fn err(&self, why: &str) -> Error {
        Error::malformed(self.what, format!("{why} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", b as char)))
        }
    }

    fn literal(&mut self, word: &str, v: Node) -> Result<Node> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(self.err(&format!("nested more than {MAX_DEPTH} deep")));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let (value, raw) = self.string()?;
                Ok(Node::Str { value, raw })
            }
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Node> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        Ok(Node::Number(text.to_owned()))
    }

    fn hex4(&mut self) -> Result<u32> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<(String, bool)> {
        self.eat(b'"')?;
        let mut out = String::new();
        let mut raw = true;
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The input is valid UTF-8 and we stopped at an ASCII byte.
            out.push_str(std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default());
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((out, raw));
                }
                Some(b'\\') => {
                    raw = false;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                let lo = if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                                    self.pos += 2;
                                    Some(self.hex4()?)
                                } else {
                                    None
                                };
                                match lo {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => char::from_u32(
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                                    ),
                                    _ => None,
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            let Some(c) = c else {
                                return Err(Error::ambiguous(
                                    self.what,
                                    format!(
                                        "a lone UTF-16 surrogate escape before byte {}, which Go's \
                                         encoding/json replaces with U+FFFD",
                                        self.pos
                                    ),
                                ));
                            };
                            out.push(c);
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node> {
        self.eat(b'[')?;
        self.ws();
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Array(items));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node> {
        self.eat(b'{')?;
        self.ws();
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let (key, _) = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Object(members));
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }
}

// ---- Go's key folding ------------------------------------------------------

/// Which Go versions a key/field pair matches in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoldMatch {
    /// No Go version matches them.
    None,
    /// Every Go version matches them.
    All,
    /// Only some Go versions do.
    Some,
}

/// How `key` folds onto the ASCII field name `field` (both already unequal
/// as bytes). Every Go version folds ASCII letters case-insensitively and
/// takes `ſ` for `s`, `K` for `k`; Go's `ToUpper(ToLower(r))` fold also took
/// `ı` and `İ` for `i`. No other rune folds onto ASCII in any version.
fn fold_match(field: &str, key: &str) -> FoldMatch {
    let mut version_dependent = false;
    let mut f = field.bytes();
    for c in key.chars() {
        let Some(fb) = f.next() else {
            return FoldMatch::None;
        };
        let fu = fb.to_ascii_uppercase();
        let ok = match c {
            c if c.is_ascii() => {
                let cb = c as u8;
                cb == fb || (fb.is_ascii_alphabetic() && cb.to_ascii_uppercase() == fu)
            }
            '\u{017F}' => fu == b'S',
            '\u{212A}' => fu == b'K',
            '\u{0130}' | '\u{0131}' if fu == b'I' => {
                version_dependent = true;
                true
            }
            _ => false,
        };
        if !ok {
            return FoldMatch::None;
        }
    }
    if f.next().is_some() {
        FoldMatch::None
    } else if version_dependent {
        FoldMatch::Some
    } else {
        FoldMatch::All
    }
}

/// The field of `fields` that `key` sets in Go: exact name first, else the
/// case fold. `Err` names the fields a version-dependent fold could reach.
fn lookup(
    fields: &'static [(&'static str, &'static Ty)],
    key: &str,
) -> std::result::Result<Option<usize>, &'static str> {
    if let Some(i) = fields.iter().position(|(n, _)| *n == key) {
        return Ok(Some(i));
    }
    let mut found = None;
    for (i, (n, _)) in fields.iter().enumerate() {
        match fold_match(n, key) {
            FoldMatch::None => {}
            FoldMatch::All => {
                if found.is_none() {
                    found = Some(i);
                }
            }
            FoldMatch::Some => return Err(n),
        }
    }
    Ok(found)
}

// ---- Canonicalisation ------------------------------------------------------

fn type_error(what: &str, path: &str, got: &Node, want: &str) -> Error {
    Error::malformed(
        what,
        format!(
            "`{}` is {}, not {want}: Go's encoding/json (which container runtimes use) \
             refuses to decode it",
            display_path(path),
            got.kind()
        ),
    )
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(document)" } else { path }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `key` shown safely in a message (control characters escaped, bounded).
fn show_key(key: &str) -> String {
    let mut s = String::new();
    for c in key.chars().take(80) {
        if c.is_control() || !c.is_ascii() {
            let _ = write!(s, "\\u{{{:04x}}}", c as u32);
        } else {
            s.push(c);
        }
    }
    s
}

/// Go's `strconv.ParseInt(text, 10, 64)`: decimal digits with an optional
/// `-`; no fraction or exponent.
fn go_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// The subset of RFC 3339 that every Go version's `Time.UnmarshalJSON`
/// accepts: `YYYY-MM-DDTHH:MM:SS[.frac]` then `Z` or `±HH:MM`, in range.
fn go_time(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        if d.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(d).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || hour > 23 || min > 59 || sec > 59 {
        return false;
    }
    let mut i = 19;
    if sep(i, b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        i += 1 + n;
    }
    match b.get(i..) {
        Some(b"Z") => true,
        Some(z) if z.len() == 6 && (z[0] == b'+' || z[0] == b'-') && z[3] == b':' => {
            matches!((num(i + 1..i + 3), num(i + 4..i + 6)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

/// The value Go stores for a `null` element of a list or map of `ty`.
fn zero(ty: &Ty) -> Value {
    match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int => Value::from(0),
        Ty::Struct(_) => Value::Object(Map::new()),
        Ty::Time | Ty::StrSlice | Ty::List(_) | Ty::Map(_) => Value::Null,
    }
}

struct Canon<'a> {
    what: &'a str,
}

impl Canon<'_> {
    fn value(&self, node: &Node, ty: &'static Ty, path: &str) -> Result<Value> {
        if matches!(node, Node::Null) {
            return Ok(Value::Null);
        }
        match ty {
            Ty::Str => match node {
                Node::Str { value, .. } => Ok(Value::String(value.clone())),
                _ => Err(type_error(self.what, path, node, "a string")),
            },
            Ty::Bool => match node {
                Node::Bool(b) => Ok(Value::Bool(*b)),
                _ => Err(type_error(self.what, path, node, "a boolean")),
            },
            Ty::Int => match node {
                Node::Number(n) => go_int(n).map(Value::from).ok_or_else(|| {
                    Error::malformed(
                        self.what,
                        format!(
                            "`{}` is {n}, not a 64-bit integer: Go's encoding/json refuses it",
                            display_path(path)
                        ),
                    )
                }),
                _ => Err(type_error(self.what, path, node, "an integer")),
            },
            Ty::Time => match node {
                Node::Str { value, raw: true } if go_time(value) => {
                    Ok(Value::String(value.clone()))
                }
                Node::Str { .. } => Err(Error::malformed(
                    self.what,
                    format!(
                        "`{}` is not an RFC 3339 time Go's time.Time decodes",
                        display_path(path)
                    ),
                )),
                _ => Err(type_error(self.what, path, node, "a time string")),
            },
            Ty::Bytes => match node {
                Node::Str { value, .. } => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(value)
                        .map(|_| Value::String(value.clone()))
                        .map_err(|_| {
                            Error::malformed(
                                self.what,
                                format!("`{}` is not base64", display_path(path)),
                            )
                        })
                }
                _ => Err(type_error(self.what, path, node, "a base64 string")),
            },
            Ty::StrSlice => match node {
                Node::Str { value, .. } => Ok(Value::Array(vec![Value::String(value.clone())])),
                Node::Array(_) => self.value(node, &STR_LIST, path),
                _ => Err(type_error(
                    self.what,
                    path,
                    node,
                    "a string or a list of strings",
                )),
            },
            Ty::List(elem) => match node {
                Node::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let v = self.value(item, elem, &format!("{path}[{i}]"))?;
                        Ok(if v.is_null() { zero(elem) } else { v })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Array),
                _ => Err(type_error(self.what, path, node, "a list")),
            },
            Ty::Map(elem) => match node {
                Node::Object(members) => {
                    let mut out = Map::new();
                    for (k, v) in members {
                        let v = self.value(v, elem, &child_path(path, k))?;
                        // A Go map keeps the last value of a repeated key.
                        out.insert(k.clone(), if v.is_null() { zero(elem) } else { v });
                    }
                    Ok(Value::Object(out))
                }
                _ => Err(type_error(self.what, path, node, "an object")),
            },
            Ty::Struct(fields) => match node {
                Node::Object(members) => self.object(members, fields, path),
                _ => Err(type_error(self.what, path, node, "an object")),
            },
        }
    }

    fn object(
        &self,
        members: &[(String, Node)],
        fields: &'static [(&'static str, &'static Ty)],
        path: &str,
    ) -> Result<Value> {
        let mut seen: Vec<Option<&str>> = vec![None; fields.len()];
        let mut out = Map::new();
        for (key, v) in members {
            let i = match lookup(fields, key) {
                Ok(Some(i)) => i,
                Ok(None) => continue,
                Err(field) => {
                    return Err(Error::ambiguous(
                        self.what,
                        format!(
                            "key `{}` of `{}` sets field `{field}` in some Go versions and \
                             nothing in others (encoding/json's Unicode case folding changed)",
                            show_key(key),
                            display_path(path)
                        ),
                    ));
                }
            };
            let (name, fty) = fields[i];
            if let Some(prev) = seen[i] {
                return Err(Error::ambiguous(
                    self.what,
                    format!(
                        "keys `{}` and `{}` of `{}` both set field `{name}`; Go's \
                         encoding/json matches keys case-insensitively and keeps the last, \
                         other readers keep the first",
                        show_key(prev),
                        show_key(key),
                        display_path(path)
                    ),
                ));
            }
            seen[i] = Some(key);
            let v = self.value(v, fty, &child_path(path, name))?;
            // `null` leaves a Go field at its zero value: absent.
            if !v.is_null() {
                out.insert((*name).to_owned(), v);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Canonicalises a parsed document against `ty`: struct keys become their Go
/// field names, unknown keys are dropped, `null` fields are dropped, types
/// are checked as Go checks them.
pub fn canonicalize(node: &Node, ty: &'static Ty, what: &str) -> Result<Value> {
    Canon { what }.value(node, ty, "")
}

/// Parses and canonicalises `bytes` against `ty`.
pub fn canonical(bytes: &[u8], ty: &'static Ty, what: &str) -> Result<Value> {
    canonicalize(&parse(bytes, what)?, ty, what)
}

/// Parses `bytes` as Go would decode them into `ty`, then deserialises `T`
/// from the canonical tree.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], ty: &'static Ty, what: &str) -> Result<T> {
    from_canonical(canonical(bytes, ty, what)?, what)
}

/// Deserialises `T` from a canonical tree.
pub fn from_canonical<T: DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::malformed(what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(doc: &str, ty: &'static Ty) -> Result<Value> {
        canonical(doc.as_bytes(), ty, "doc")
    }

    fn is_ambiguous(r: &Result<Value>) -> bool {
        matches!(r, Err(Error::Ambiguous { .. }))
    }

    #[test]
    fn parses_json_like_go() {
        assert!(
            parse(
                br#" {"a":[1,-0.5e+3,true,false,null,"x\u00e9\ud83d\ude00"]} "#,
                "d"
            )
            .is_ok()
        );
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{\"a\":1,}",
            b"01",
            b"1.",
            b"-",
            b"+1",
            b".5",
            b"tru",
            b"\"a\x01\"",
            b"{} x",
            b"{}{}",
            b"\xef\xbb\xbf{}",
            b"'a'",
            b"NaN",
            b"\"\\x\"",
        ] {
            assert!(
                parse(bad, "d").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            parse(deep.as_bytes(), "d").is_err(),
            "too deep: refused, no stack overflow"
        );
    }

    #[test]
    fn text_go_repairs_is_ambiguous() {
        assert!(matches!(
            parse(b"\"\xff\"", "d"),
            Err(Error::Ambiguous { .. })
        ));
        assert!(matches!(
            parse(br#""\ud800""#, "d"),
            Err(Error::Ambiguous { .. })
        ));
        assert!(matches!(
            parse(br#""\udc00\ud800""#, "d"),
            Err(Error::Ambiguous { .. })
        ));
    }

    #[test]
    fn lone_lowercase_key_is_the_go_field() {
        let v = canon(r#"{"config":{"user":"0"}}"#, &IMAGE).unwrap();
        assert_eq!(v["config"]["User"], "0");
        let v = canon(
            r#"{"Config":{"USER":"0"},"ROOTFS":{"Diff_IDs":["x"]}}"#,
            &IMAGE,
        )
        .unwrap();
        assert_eq!(v["config"]["User"], "0");
        assert_eq!(v["rootfs"]["diff_ids"][0], "x");
    }

    #[test]
    fn two_keys_for_one_field_are_ambiguous() {
        for doc in [
            r#"{"config":{"User":"app","user":"0"}}"#,
            r#"{"config":{"User":"app","User":"0"}}"#,
            r#"{"rootfs":{"diff_ids":[]},"RootFS":{"diff_ids":["x"]}}"#,
            r#"{"rootfs":{"diff_ids":[],"Diff_IDs":["x"]}}"#,
        ] {
            assert!(is_ambiguous(&canon(doc, &IMAGE)), "{doc}");
        }
        assert!(is_ambiguous(&canon(
            r#"{"layers":[],"Layers":[]}"#,
            &MANIFEST_OR_INDEX
        )));
        assert!(is_ambiguous(&canon(
            r#"[{"Layers":[],"layers":["a"]}]"#,
            &DOCKER_MANIFEST
        )));
    }

    #[test]
    fn unicode_folds_every_go_version_shares_are_followed() {
        // ſ folds to s, K to k, in all Go versions.
        let v = canon("{\"config\":{\"U\u{17f}er\":\"0\"}}", &IMAGE).unwrap();
        assert_eq!(v["config"]["User"], "0");
        let v = canon(
            "[{\"Config\":\"c\",\"RepoTags\":[],\"Layers\":[]}]",
            &DOCKER_MANIFEST,
        )
        .unwrap();
        assert_eq!(v[0]["Config"], "c");
        let v = canon("{\"config\":{\"Wor\u{212a}ingDir\":\"/\"}}", &IMAGE).unwrap();
        assert_eq!(v["config"]["WorkingDir"], "/");
        assert!(is_ambiguous(&canon(
            "{\"config\":{\"User\":\"app\",\"u\u{17f}er\":\"0\"}}",
            &IMAGE
        )));
    }

    #[test]
    fn unicode_folds_that_depend_on_the_go_version_are_ambiguous() {
        for key in ["d\u{131}ff_ids", "D\u{130}FF_IDS"] {
            let doc = format!("{{\"rootfs\":{{\"{key}\":[\"x\"]}}}}");
            assert!(is_ambiguous(&canon(&doc, &IMAGE)), "{key}");
        }
        // A dotless i where the field has no i matches nothing anywhere.
        let v = canon("{\"config\":{\"U\u{131}er\":\"0\"}}", &IMAGE).unwrap();
        assert_eq!(v["config"], serde_json::json!({}));
    }

    #[test]
    fn unknown_keys_are_ignored_and_maps_keep_keys() {
        let v = canon(r#"{"x":1e999,"X":{"a":[]},"x":"again"}"#, &IMAGE);
        assert_eq!(v.unwrap(), serde_json::json!({}));
        let v = canon(
            r#"{"config":{"Labels":{"a":"1","A":"2","a":"3"},"ExposedPorts":{"22/tcp":{},"22/TCP":null}}}"#,
            &IMAGE,
        )
        .unwrap();
        assert_eq!(v["config"]["Labels"], serde_json::json!({"a":"3","A":"2"}));
        assert_eq!(
            v["config"]["ExposedPorts"],
            serde_json::json!({"22/tcp":{},"22/TCP":{}})
        );
    }

    #[test]
    fn go_types_are_enforced() {
        for doc in [
            r#"{"config":{"User":5}}"#,
            r#"{"config":{"User":["0"]}}"#,
            r#"{"config":{"Cmd":[1]}}"#,
            r#"{"config":{"Cmd":{}}}"#,
            r#"{"config":{"ExposedPorts":{"22/tcp":1}}}"#,
            r#"{"config":{"ExposedPorts":[]}}"#,
            r#"{"config":{"Env":"A=1"}}"#,
            r#"{"config":{"Tty":"yes"}}"#,
            r#"{"config":{"StopTimeout":1.5}}"#,
            r#"{"rootfs":{"diff_ids":"x"}}"#,
            r#"{"history":[{"empty_layer":1}]}"#,
            r#"{"created":"yesterday"}"#,
            r#"{"created":5}"#,
            r#"{"Size":1e3}"#,
            r#"{"config":[]}"#,
            r#"[]"#,
        ] {
            assert!(
                matches!(canon(doc, &IMAGE), Err(Error::Malformed { .. })),
                "{doc}"
            );
        }
        for doc in [
            r#"{"layers":[{"size":"1"}]}"#,
            r#"{"layers":[{"size":9223372036854775808}]}"#,
            r#"{"config":{"data":"***"}}"#,
            r#"{"manifests":[{"platform":{"os":1}}]}"#,
        ] {
            assert!(
                matches!(canon(doc, &MANIFEST_OR_INDEX), Err(Error::Malformed { .. })),
                "{doc}"
            );
        }
    }

    #[test]
    fn go_leniency_is_kept() {
        let v = canon(
            r#"{"created":"2024-02-29T23:59:59.123456789+05:30","config":{"Cmd":"/bin/sh","Entrypoint":null,"User":null,"Env":["A",null]},"history":[null]}"#,
            &IMAGE,
        )
        .unwrap();
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
        assert!(v["config"].get("Entrypoint").is_none());
        assert!(v["config"].get("User").is_none());
        assert_eq!(v["config"]["Env"], serde_json::json!(["A", ""]));
        assert_eq!(v["history"], serde_json::json!([{}]));
        let v = canon(
            r#"{"layers":[{"size":-0}],"schemaVersion":2}"#,
            &MANIFEST_OR_INDEX,
        )
        .unwrap();
        assert_eq!(v["layers"][0]["size"], 0);
    }

    #[test]
    fn times_are_checked_like_go() {
        for ok in [
            "2020-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "2020-12-31T23:59:59.5-07:00",
        ] {
            assert!(go_time(ok), "{ok}");
        }
        for bad in [
            "2021-02-29T00:00:00Z",
            "2020-01-01 00:00:00Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:00",
            "2020-01-01T00:00:00z",
            "2020-01-01T00:00:00.Z",
            "2020-01-01T00:00:00+2400",
        ] {
            assert!(!go_time(bad), "{bad}");
        }
        assert!(canon(r#"{"created":"2020-01-01T00:00:00\u005a"}"#, &IMAGE).is_err());
    }
}
