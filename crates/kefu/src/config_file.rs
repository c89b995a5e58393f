//! The configuration file of `kefu serve` (README, "Configuration file"): its top-level
//! keys but `[server]` declare fixtures (README, "Fixtures and reset"); its `[server]`
//! table takes every flag of `kefu serve` under its own name (`_` for `-`). A setting
//! comes from, in order of precedence, the command line, the `KEFU_*` environment, the
//! file, then the default: the file fills only the flags clap found neither given nor
//! in the environment, and each of its values goes through that flag's own parser.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use kefu_api::admin::fixtures::Fixtures;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The table holding the flags of `kefu serve`.
const SERVER: &str = "server";

/// Flags whose value is a path (or an SQLite path), read from the file's directory
/// when relative.
const PATH_FLAGS: &[&str] = &["database_url", "tls_cert", "tls_key", "fixtures"];

/// Flags that have no place in the file.
const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

/// A mistake in the configuration file: where, and what was expected.
#[derive(Debug)]
pub(crate) struct FileError {
    file: PathBuf,
    line: Option<usize>,
    message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The fixtures the file declares (every top-level key but `[server]`), with avatar
/// paths from the file's directory.
pub(crate) fn fixtures(path: &Path) -> Result<Fixtures, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_owned(),
        line: None,
        message: format!("cannot read it: {e}"),
    })?;
    let source = Source { path, text: &text };
    let mut root = DeTable::parse(&text).map_err(|e| source.error(e.span(), e.message()))?;
    let server = root
        .get_ref()
        .keys()
        .find(|key| key.get_ref() == SERVER)
        .cloned();
    if let Some(server) = server {
        root.get_mut().remove(&server);
    }
    resolve_secrets(&source, root.get_mut())?;
    // Keys nothing reads are mistakes too (a key under the wrong table, say).
    let mut ignored = Vec::new();
    let mut fixtures: Fixtures =
        serde_ignored::deserialize(toml::de::Deserializer::from(root.clone()), |path| {
            ignored.push(path.to_string())
        })
        .map_err(|e| source.error(e.span(), e.message()))?;
    if let Some(path) = ignored.first() {
        return Err(source.error(
            span_of(root.get_ref(), path),
            format!("unknown key `{path}`"),
        ));
    }
    resolve_avatars(&mut fixtures, path);
    Ok(fixtures)
}

/// The fixtures of every `.toml` and `.json` file in `dir`, in the order of their
/// names.
pub(crate) fn fixtures_dir(dir: &Path) -> Result<Fixtures, FileError> {
    let unreadable = |e: std::io::Error| FileError {
        file: dir.to_owned(),
        line: None,
        message: format!("cannot read the directory: {e}"),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "toml" || ext == "json")
        })
        .collect();
    files.sort();
    let mut all = Fixtures::default();
    for file in files {
        let fixtures = if file.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&file).map_err(|e| FileError {
                file: file.clone(),
                line: None,
                message: format!("cannot read it: {e}"),
            })?;
            let mut fixtures: Fixtures = serde_json::from_str(&text).map_err(|e| FileError {
                file: file.clone(),
                line: Some(e.line()),
                message: e.to_string(),
            })?;
            resolve_avatars(&mut fixtures, &file);
            fixtures
        } else {
            fixtures(&file)?
        };
        all.merge(fixtures);
    }
    Ok(all)
}

/// Replaces every `{ env = "NAME" }` and `{ file = "path" }` of the fixtures by the
/// string it stands for, so that secrets stay out of the file.
fn resolve_secrets(source: &Source<'_>, table: &mut DeTable<'_>) -> Result<(), FileError> {
    for (key, value) in table.iter_mut() {
        resolve_value(source, key.get_ref(), value)?;
    }
    Ok(())
}

fn resolve_value(
    source: &Source<'_>,
    name: &str,
    value: &mut Spanned<DeValue<'_>>,
) -> Result<(), FileError> {
    let secret = match value.get_ref() {
        DeValue::Table(table) if table.len() == 1 => table
            .keys()
            .next()
            .is_some_and(|kind| matches!(kind.get_ref().as_ref(), "env" | "file")),
        _ => false,
    };
    if secret {
        let resolved = scalar(source, name, value)?;
        *value.get_mut() = DeValue::String(resolved.into());
        return Ok(());
    }
    match value.get_mut() {
        DeValue::Table(table) => resolve_secrets(source, table),
        DeValue::Array(items) => items
            .iter_mut()
            .try_for_each(|item| resolve_value(source, name, item)),
        _ => Ok(()),
    }
}

/// Where the value at a dotted path (`faults.0.clock_offset_secs`) is.
fn span_of(table: &DeTable<'_>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let (_, mut value) = table.iter().find(|(key, _)| key.get_ref() == first)?;
    for segment in segments {
        value = match value.get_ref() {
            DeValue::Table(table) => table.iter().find(|(key, _)| key.get_ref() == segment)?.1,
            DeValue::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return Some(value.span()),
        };
    }
    Some(value.span())
}

fn resolve_avatars(fixtures: &mut Fixtures, file: &Path) {
    let dir = file.parent().unwrap_or_else(|| Path::new(""));
    for avatar in fixtures.avatars_mut() {
        if avatar.is_relative() {
            *avatar = dir.join(&*avatar);
        }
    }
}

/// The file's text and where it lies, for errors and relative paths.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, at: Option<std::ops::Range<usize>>, message: impl Into<String>) -> FileError {
        FileError {
            file: self.path.to_owned(),
            line: at.map(|span| {
                self.text[..span.start.min(self.text.len())]
                    .bytes()
                    .filter(|b| *b == b'\n')
                    .count()
                    + 1
            }),
            message: message.into(),
        }
    }

    /// `path` as given, or from the file's directory when relative.
    fn resolve(&self, path: &str) -> String {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.display().to_string();
        }
        let dir = self.path.parent().unwrap_or_else(|| Path::new(""));
        dir.join(path).display().to_string()
    }
}

/// The arguments `argv` stands for with the file's settings added: for each flag of
/// `command` (a subcommand taking the flags of `kefu serve`) that `matches` shows
/// neither on the command line nor in the environment, the file's value. `serve` is
/// `kefu serve`'s own command, which says which keys the file may hold.
pub(crate) fn layer(
    path: &Path,
    command: &Command,
    serve: &Command,
    matches: &ArgMatches,
) -> Result<Vec<OsString>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_owned(),
        line: None,
        message: format!("cannot read it: {e}"),
    })?;
    let source = Source { path, text: &text };
    let root = DeTable::parse(&text).map_err(|e| source.error(e.span(), e.message()))?;
    let mut added = Vec::new();
    for (key, value) in root.get_ref() {
        if key.get_ref().as_ref() != SERVER {
            // A fixture: read by `fixtures`.
            continue;
        }
        let DeValue::Table(table) = value.get_ref() else {
            return Err(source.error(Some(value.span()), format!("expected a table [{SERVER}]")));
        };
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let known = serve
                .get_arguments()
                .find(|arg| arg.get_id() == name && !NOT_IN_FILE.contains(&name));
            let Some(arg) = known else {
                let names: Vec<&str> = serve
                    .get_arguments()
                    .map(|arg| arg.get_id().as_str())
                    .filter(|id| !NOT_IN_FILE.contains(id))
                    .collect();
                return Err(source.error(
                    Some(key.span()),
                    format!(
                        "unknown key `{name}` in [{SERVER}]; expected one of: {}",
                        names.join(", ")
                    ),
                ));
            };
            let Some(arg) = command.get_arguments().find(|a| a.get_id() == arg.get_id()) else {
                continue;
            };
            let given = matches!(
                matches.value_source(name),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            let long = arg.get_long().unwrap_or(name);
            let Some(flag) = flag_from(&source, name, long, arg, value)? else {
                continue;
            };
            if !given {
                added.push(OsString::from(flag));
            }
        }
    }
    Ok(added)
}

/// The command-line argument (`--long=value`, or `--long` for a switch) the file's
/// `value` for flag `name` stands for, checked by the flag's own parser; `None` for a
/// switch set to false.
fn flag_from(
    source: &Source<'_>,
    name: &str,
    long: &str,
    arg: &clap::Arg,
    value: &Spanned<DeValue<'_>>,
) -> Result<Option<String>, FileError> {
    let at = || Some(value.span());
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value.get_ref() {
            DeValue::Boolean(true) => Ok(Some(format!("--{long}"))),
            DeValue::Boolean(false) => Ok(None),
            _ => Err(source.error(at(), format!("{SERVER}.{name}: expected true or false"))),
        };
    }
    let many = matches!(arg.get_action(), ArgAction::Append);
    let items: Vec<String> = match value.get_ref() {
        DeValue::Array(items) if many => items
            .iter()
            .map(|item| scalar(source, &format!("{SERVER}.{name}"), item))
            .collect::<Result<_, _>>()?,
        DeValue::Array(_) => {
            return Err(source.error(at(), format!("{SERVER}.{name}: expected a single value")));
        }
        _ => vec![scalar(source, &format!("{SERVER}.{name}"), value)?],
    };
    let items: Vec<String> = if PATH_FLAGS.contains(&name) {
        items
            .iter()
            .map(|item| path_value(source, name, item))
            .collect()
    } else {
        items
    };
    for item in &items {
        check(source, at(), name, long, arg, item)?;
    }
    Ok(Some(format!("--{long}={}", items.join(","))))
}

/// A string, number or boolean as the text a flag takes; a table `{ env = "NAME" }` or
/// `{ file = "path" }` as that variable's value or that file's content (without its
/// final line break).
fn scalar(
    source: &Source<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
) -> Result<String, FileError> {
    let at = || Some(value.span());
    match value.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Integer(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .map(|n| n.to_string())
            .map_err(|_| source.error(at(), format!("{name}: an integer too large"))),
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        DeValue::Table(table) if table.len() == 1 => {
            let (kind, inner) = table.iter().next().expect("one entry");
            let Some(inner) = inner.get_ref().as_str() else {
                return Err(source.error(
                    Some(inner.span()),
                    format!("{name}.{}: expected a string", kind.get_ref()),
                ));
            };
            match kind.get_ref().as_ref() {
                "env" => std::env::var(inner).map_err(|_| {
                    source.error(
                        at(),
                        format!(
                            "{name}: the environment variable {inner} is not set \
                             (or not UTF-8)"
                        ),
                    )
                }),
                "file" => {
                    let path = source.resolve(inner);
                    std::fs::read_to_string(&path)
                        .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                        .map_err(|e| source.error(at(), format!("{name}: cannot read {path}: {e}")))
                }
                other => Err(source.error(
                    Some(kind.span()),
                    format!("{name}: unknown key `{other}`; expected `env` or `file`"),
                )),
            }
        }
        _ => Err(source.error(
            at(),
            format!(
                "{name}: expected a string, a number, a boolean, {{ env = \"NAME\" }} \
                 or {{ file = \"path\" }}"
            ),
        )),
    }
}

/// A path flag's value from the file: relative paths (and relative `sqlite://` or `sqlite:` paths)
/// are read from the file's directory; PostgreSQL URLs are kept as they are.
fn path_value(source: &Source<'_>, name: &str, value: &str) -> String {
    if name == "database_url" {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return value.to_owned();
        }
        for scheme in ["sqlite://", "sqlite:"] {
            if let Some(path) = value.strip_prefix(scheme) {
                return format!("{scheme}{}", source.resolve(path));
            }
        }
    }
    source.resolve(value)
}

/// Runs the flag's own parser (and range checks) on `value`, alone.
fn check(
    source: &Source<'_>,
    at: Option<std::ops::Range<usize>>,
    name: &str,
    long: &str,
    arg: &clap::Arg,
    value: &str,
) -> Result<(), FileError> {
    let alone = arg
        .clone()
        .env(None)
        .requires(clap::builder::Resettable::<clap::Id>::Reset)
        .default_value(None)
        .required(false);
    Command::new("kefu")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(alone)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(|e| {
            // clap's message up to its first blank line: what is wrong, and what
            // would do (the possible values), without the usage.
            let rendered = e.render().to_string();
            let said: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let said = said.join(" ");
            let said = said.strip_prefix("error: ").unwrap_or(&said);
            source.error(at, format!("{SERVER}.{name}: {said}"))
        })
}
