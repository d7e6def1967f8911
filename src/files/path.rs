//! Paths inside a workspace as clients write them: relative, made of plain names only. A path is
//! checked here by its text (no `..`, `.`, empty or absolute forms, no `/` or NUL hidden in a
//! percent-encoded name); where it leads is the kernel's to check (`super`, `openat2` with
//! `RESOLVE_BENEATH`), since a name can be a symbolic link.

use percent_encoding::percent_decode;

/// Longest path accepted (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest name of one file (Linux's `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// A path inside a workspace: its names, none of them empty, `.`, `..`, or holding `/` or NUL.
/// No names at all is the workspace's root.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WsPath {
    names: Vec<String>,
}

/// Why a path is refused (its text, before any file is looked at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPath(pub String);

impl WsPath {
    /// The workspace's root.
    pub fn root() -> Self {
        WsPath::default()
    }

    /// Parses a path as it comes in a URL after the workspace's prefix: still percent-encoded,
    /// names separated by `/` (one leading and one trailing `/` are allowed, nothing else
    /// empty). Each name is decoded once; a decoded name that is `.`, `..`, or holds `/` or NUL
    /// is refused, like one that is not UTF-8.
    pub fn from_url(raw: &str) -> Result<Self, BadPath> {
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(WsPath::root());
        }
        let mut names = Vec::new();
        for encoded in trimmed.split('/') {
            let bytes: Vec<u8> = percent_decode(encoded.as_bytes()).collect();
            let name = String::from_utf8(bytes)
                .map_err(|_| BadPath(format!("the name {encoded:?} is not UTF-8 once decoded")))?;
            names.push(name);
        }
        Self::from_names(names)
    }

    /// Parses a path written plainly (`a/b/c.txt`, as in a form): `/`-separated names, no
    /// decoding.
    pub fn parse(plain: &str) -> Result<Self, BadPath> {
        let trimmed = plain.strip_prefix('/').unwrap_or(plain);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(WsPath::root());
        }
        Self::from_names(trimmed.split('/').map(String::from).collect())
    }

    fn from_names(names: Vec<String>) -> Result<Self, BadPath> {
        let mut total = 0;
        for name in &names {
            check_name(name)?;
            total += name.len() + 1;
        }
        if total > MAX_PATH {
            return Err(BadPath(format!("the path is longer than {MAX_PATH} bytes")));
        }
        Ok(WsPath { names })
    }

    /// Whether this is the workspace's root.
    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// Its names, from the root down.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Its last name (`None` for the root).
    pub fn name(&self) -> Option<&str> {
        self.names.last().map(String::as_str)
    }

    /// The path of its folder (the root's is the root).
    pub fn parent(&self) -> WsPath {
        let mut names = self.names.clone();
        names.pop();
        WsPath { names }
    }

    /// This path and one more name (checked).
    pub fn join(&self, name: &str) -> Result<WsPath, BadPath> {
        check_name(name)?;
        let mut names = self.names.clone();
        names.push(name.to_string());
        Ok(WsPath { names })
    }

    /// The relative path as the kernel takes it (`.` for the root).
    pub fn relative(&self) -> String {
        if self.names.is_empty() {
            ".".to_string()
        } else {
            self.names.join("/")
        }
    }
}

impl std::fmt::Display for WsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.names.join("/"))
    }
}

/// Refuses a name that is not a plain file name.
pub fn check_name(name: &str) -> Result<(), BadPath> {
    if name.is_empty() {
        return Err(BadPath("the path has an empty name (a doubled '/')".into()));
    }
    if name == "." || name == ".." {
        return Err(BadPath(format!(
            "the path has a {name:?}: paths are relative to the workspace, without '.' or '..'"
        )));
    }
    if name.contains('/') {
        return Err(BadPath(format!("the name {name:?} holds a '/' (an encoded '%2F')")));
    }
    if name.contains('\0') {
        return Err(BadPath("a name holds a NUL character".into()));
    }
    if name.len() > MAX_NAME {
        return Err(BadPath(format!("a name is longer than {MAX_NAME} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<String> {
        WsPath::from_url(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}")).names().to_vec()
    }

    fn bad(raw: &str) -> String {
        WsPath::from_url(raw).expect_err(raw).0
    }

    #[test]
    fn plain_names_are_decoded_once() {
        assert!(ok("").is_empty());
        assert!(ok("/").is_empty());
        assert_eq!(ok("a/b.txt"), ["a", "b.txt"]);
        assert_eq!(ok("/a/b/"), ["a", "b"]);
        assert_eq!(ok("with%20space/%C3%A9t%C3%A9"), ["with space", "été"]);
        // Encoded twice: decoded once, it is a name made of those characters, not a '..'.
        assert_eq!(ok("%252e%252e"), ["%2e%2e"]);
        assert_eq!(ok("..."), ["..."]);
        assert_eq!(ok(".hidden"), [".hidden"]);
        assert_eq!(WsPath::from_url("a/b").unwrap().to_string(), "/a/b");
        assert_eq!(WsPath::from_url("a/b").unwrap().relative(), "a/b");
        assert_eq!(WsPath::root().relative(), ".");
        assert_eq!(WsPath::from_url("a/b").unwrap().parent().names(), ["a"]);
    }

    #[test]
    fn dots_slashes_and_nul_are_refused_in_every_form() {
        for raw in ["..", "a/../b", "a/..", "./a", "a/./b", "%2e%2e", "%2E%2E/etc", "a/%2e", ".%2e", "%2e."] {
            assert!(bad(raw).contains("'.' or '..'"), "{raw}: {}", bad(raw));
        }
        for raw in ["%2Fetc%2Fpasswd", "a%2F..%2F..%2Fetc", "a%2fb"] {
            assert!(bad(raw).contains("'/'"), "{raw}: {}", bad(raw));
        }
        assert!(bad("a//b").contains("empty"));
        assert!(bad("//etc").contains("empty"));
        assert!(bad("a%00b").contains("NUL"));
        assert!(bad("%ff%fe").contains("UTF-8"));
        assert!(bad(&"x".repeat(256)).contains("longer than 255"));
        assert!(bad(&["y"; 2100].join("/")).contains("longer than 4096"));
    }

    #[test]
    fn plain_paths_are_not_decoded() {
        assert_eq!(WsPath::parse("a/%2e%2e").unwrap().names(), ["a", "%2e%2e"]);
        assert!(WsPath::parse("a/../b").is_err());
        assert!(WsPath::parse("/").unwrap().is_root());
        assert!(WsPath::root().join("..").is_err());
        assert_eq!(WsPath::root().join("x").unwrap().names(), ["x"]);
    }
}
