//! The runtime's modules keep their layering: each uses only the layers
//! below it, and only the core (`hub` with the public `Greenlet` type) may
//! hold an import cycle.
//!
//! The order is read from the runtime's crate docs (`runtime/src/lib.rs`,
//! the `text` block under "# Layers"), so the docs and this check cannot
//! drift apart. Every `crate::` path in the runtime's code (comments and
//! string literals aside) is an edge between two top-level modules; the
//! test fails on an edge that goes up the order, on a cycle outside the
//! core, and on a module that the order does not place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The core's modules: the only ones allowed to use each other both ways.
const CORE: [&str; 2] = ["hub", "greenlet"];

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src")
}

/// Every `.rs` file under `dir`, with its top-level module name (`lib` for
/// the crate root).
fn modules(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).unwrap();
                let first = rel.components().next().unwrap().as_os_str();
                let name = Path::new(first).file_stem().unwrap().to_str().unwrap();
                out.push((name.to_owned(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// `src` without comments (doc comments included), string and char
/// literals: what is left is code.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#') => {
                // A raw string r"..." or r#"..."#, or an identifier `r#...`.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).all(|&c| c == b'#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{1F600}'), or a lifetime.
                let close = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match close {
                    Some(c) => {
                        out.push_str("' '");
                        i = c + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// `code` without its `#[cfg(test)] mod … { … }` blocks: unit tests may
/// use any layer (they drive a module through the public API).
fn without_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(i) = out.find("#[cfg(test)]") {
        let after = &out[i + "#[cfg(test)]".len()..];
        let is_mod = after.trim_start().starts_with("mod ");
        let Some(open) = after.find('{').filter(|_| is_mod) else {
            // Not a module: keep the item, drop only the attribute.
            out.replace_range(i..i + "#[cfg(test)]".len(), "");
            continue;
        };
        let start = i + "#[cfg(test)]".len() + open;
        let mut depth = 0;
        let mut end = out.len();
        for (k, c) in out[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.replace_range(i..end, "");
    }
    out
}

/// The first path segment of every item a `crate::` path names, including
/// each item of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        // Not part of a longer identifier (`$crate::` counts: it is the root).
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = code[i + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group, up to its matching brace.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && !c.is_whitespace() => {
                        item_start = false;
                        out.push(ident_at(&group[k..]).to_owned());
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident_at(rest).to_owned());
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

/// The crate root's re-exports and macros: item name → the module that
/// defines it, from `lib.rs`'s `pub use` lines and `#[macro_export]` macros.
fn root_items(src: &Path, files: &[(String, PathBuf)]) -> BTreeMap<String, String> {
    let lib = code_only(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut items = BTreeMap::new();
    for stmt in lib.split(';') {
        let mut stmt = stmt.trim();
        while let Some(rest) = stmt.strip_prefix("#[") {
            stmt = rest[rest.find(']').map_or(rest.len(), |k| k + 1)..].trim(); // an attribute
        }
        let Some(u) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let module = ident_at(u).to_owned();
        let names = match u.find('{') {
            Some(k) => u[k + 1..u.rfind('}').unwrap()].to_owned(),
            None => u.rsplit("::").next().unwrap().to_owned(),
        };
        for name in names.split(',') {
            let name = name.rsplit("::").next().unwrap().trim();
            let name = name.rsplit(" as ").next().unwrap().trim();
            if !name.is_empty() {
                items.insert(name.to_owned(), module.clone());
            }
        }
    }
    for (module, path) in files {
        let code = code_only(&fs::read_to_string(path).unwrap());
        for (i, _) in code.match_indices("#[macro_export]") {
            if let Some(k) = code[i..].find("macro_rules!") {
                let name = ident_at(code[i + k + "macro_rules!".len()..].trim_start());
                items.insert(name.to_owned(), module.clone());
            }
        }
    }
    items
}

/// The layers, lowest first, from the `text` block under `# Layers` in the
/// crate docs: one line per layer, its modules separated by commas, an
/// optional `(comment)` after them.
fn layers(src: &Path) -> Vec<Vec<String>> {
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let docs: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let at = docs
        .iter()
        .position(|l| *l == "# Layers")
        .expect("runtime/src/lib.rs has a `# Layers` section");
    let open = at
        + docs[at..]
            .iter()
            .position(|l| *l == "```text")
            .expect("the Layers section has a ```text block");
    let mut out = Vec::new();
    for line in &docs[open + 1..] {
        if *line == "```" {
            break;
        }
        let mods = line.split('(').next().unwrap();
        let layer: Vec<String> = mods
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        if !layer.is_empty() {
            out.push(layer);
        }
    }
    out
}

/// Edges between top-level modules: (from, to) → the files that make them.
fn edges(src: &Path) -> BTreeMap<(String, String), BTreeSet<String>> {
    let files = modules(src);
    let roots = root_items(src, &files);
    let top: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &files {
        if module == "lib" {
            continue;
        }
        let code = without_test_modules(&code_only(&fs::read_to_string(path).unwrap()));
        for first in crate_paths(&code) {
            let target = if top.contains(first.as_str()) {
                first
            } else if let Some(m) = roots.get(&first) {
                m.clone()
            } else {
                panic!(
                    "{}: `crate::{first}` names neither a module nor a root re-export",
                    path.display()
                );
            };
            if &target != module {
                let file = path.strip_prefix(src).unwrap().display().to_string();
                edges
                    .entry((module.clone(), target))
                    .or_default()
                    .insert(file);
            }
        }
    }
    edges
}

#[test]
fn no_runtime_module_uses_a_layer_above_its_own() {
    let src = runtime_src();
    let layers = layers(&src);
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut problems = Vec::new();
    for (module, _) in modules(&src) {
        if module != "lib" && !rank.contains_key(module.as_str()) {
            problems.push(format!(
                "module `{module}` is in no layer: place it in the `# Layers` order of runtime/src/lib.rs"
            ));
        }
    }
    let edges = edges(&src);
    for ((from, to), files) in &edges {
        let (Some(&a), Some(&b)) = (rank.get(from.as_str()), rank.get(to.as_str())) else {
            continue;
        };
        if b > a {
            problems.push(format!(
                "`{from}` (layer {a}) uses `{to}` (layer {b}), above it, in {files:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_core_holds_an_import_cycle() {
    let src = runtime_src();
    let edges = edges(&src);
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().insert(to);
    }
    let reaches = |a: &str, b: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![a];
        while let Some(m) = todo.pop() {
            if m == b {
                return true;
            }
            if seen.insert(m) {
                todo.extend(next.get(m).into_iter().flatten().copied());
            }
        }
        false
    };
    let mut cycles = Vec::new();
    for (from, to) in edges.keys() {
        let both_core = CORE.contains(&from.as_str()) && CORE.contains(&to.as_str());
        if !both_core && reaches(to, from) {
            cycles.push(format!("`{from}` → `{to}` → … → `{from}`"));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles outside the core:\n{}",
        cycles.join("\n")
    );
}

/// The checker itself: it must see the edges it exists to catch.
#[test]
fn the_checker_finds_paths_in_code_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{hub::{self, with_rt}, task::X};\n\
         // crate::commented\n/// crate::doc\n\
         let s = \"crate::quoted\"; let c = '\"'; let t = crate::timer::deadline_after(d);\n\
         fn f<'a>(x: &'a crate::Value) {}\n$crate::select!();\n\
         #[cfg(test)]\nmod tests { fn t() { crate::spawn(|| { crate::sleep(d) }); } }\n\
         #[cfg(test)]\nfn helper() -> crate::Hub {}",
    );
    let code = without_test_modules(&code);
    assert_eq!(
        crate_paths(&code),
        ["hub", "task", "timer", "Value", "select", "Hub"]
    );
}
