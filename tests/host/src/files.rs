//! `files = [...]` mounts.
//!
//! Like `spin up` for pattern mounts, the host copies every mounted file
//! into one staging directory per component (under the state dir) and
//! preopens that read-only at the guest's `/`. Copying keeps placements and
//! glob patterns uniform and guarantees the guest cannot reach files outside
//! what the manifest lists.

use crate::manifest::FileMount;
use anyhow::{bail, Context, Result};
use std::path::{Component, Path, PathBuf};

/// Stages `mounts` into `staging` and returns it, or `None` without mounts.
pub fn stage(
    component_id: &str,
    manifest_dir: &Path,
    mounts: &[FileMount],
    exclude: &[String],
    staging: &Path,
) -> Result<Option<PathBuf>> {
    if mounts.is_empty() {
        return Ok(None);
    }
    if staging.exists() {
        std::fs::remove_dir_all(staging)
            .with_context(|| format!("clearing {}", staging.display()))?;
    }
    std::fs::create_dir_all(staging)?;
    let context = || format!("component `{component_id}` files");
    for mount in mounts {
        match mount {
            FileMount::Placement {
                source,
                destination,
            } => {
                let Some(dest) = destination.strip_prefix('/') else {
                    bail!(
                        "{}: destination {destination:?} must be an absolute path",
                        context()
                    );
                };
                let src = manifest_dir.join(source);
                let dest = staging.join(safe_relative(dest).with_context(context)?);
                if src.is_dir() {
                    copy_dir(&src, &dest).with_context(context)?;
                } else if src.is_file() {
                    copy_file(&src, &dest).with_context(context)?;
                } else {
                    bail!("{}: source {} does not exist", context(), src.display());
                }
            }
            FileMount::Pattern(pattern) => {
                let relative = safe_relative(pattern).with_context(context)?;
                let mut matched = Vec::new();
                walk(manifest_dir, Path::new(""), &mut |rel| {
                    if glob_match(&relative, rel)
                        && !exclude.iter().any(|ex| glob_match(Path::new(ex), rel))
                    {
                        matched.push(rel.to_path_buf());
                    }
                })?;
                for rel in matched {
                    copy_file(&manifest_dir.join(&rel), &staging.join(&rel))
                        .with_context(context)?;
                }
            }
        }
    }
    Ok(Some(staging.to_path_buf()))
}

/// Rejects `..` and absolute paths so a mount cannot escape its root.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let path = Path::new(path);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("path {path:?} must be relative and must not contain `..`");
    }
    Ok(path.to_path_buf())
}

fn copy_file(src: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &dest.join(entry.file_name()))?;
        } else {
            copy_file(&path, &dest.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Calls `f` with the root-relative path of every file below `root/rel`.
fn walk(root: &Path, rel: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let child = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &child, f)?;
        } else {
            f(&child);
        }
    }
    Ok(())
}

/// Glob over path segments: `*` and `?` within a segment, `**` across any
/// number of segments.
fn glob_match(pattern: &Path, path: &Path) -> bool {
    let pattern: Vec<String> = pattern
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let path: Vec<String> = path
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    match_segments(&pattern, &path)
}

fn match_segments(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                match_segment(first.as_bytes(), segment.as_bytes())
                    && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

fn match_segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_segment(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_segment(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_segment(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| glob_match(Path::new(p), Path::new(s));
        assert!(m("data/*.txt", "data/a.txt"));
        assert!(!m("data/*.txt", "data/a.md"));
        assert!(!m("data/*.txt", "data/x/a.txt"));
        assert!(m("data/**/*.txt", "data/x/y/a.txt"));
        assert!(m("data/**/*.txt", "data/a.txt"));
        assert!(m("?.txt", "a.txt"));
    }
}
