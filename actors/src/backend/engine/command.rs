//! Checking that a container's command can run, before and right after starting it: with `Init`
//! on, the engine does not refuse a command it cannot execute, so Zoe looks for it itself.

use bollard::models::{ContainerInspectResponse, ImageInspect};
use bollard::query_parameters::ContainerArchiveInfoOptions;
use bollard::Docker;
use tracing::debug;

use super::Inner;
use crate::backend::client::{lock, CallError};
use crate::backend::logs;
use crate::protocol::ContainerSpec;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Go's os.FileMode type bits, as reported by Docker's archive stat.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_TYPE: u32 = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);

enum PathKind {
    Executable,
    NotExecutable,
    Missing,
}

impl Inner {
    /// With `Init` on, a command that cannot be executed does not make the start fail: the
    /// init process starts and then exits with 127. So the program the container will run (the
    /// image's entrypoint, else the given command, else the image's command) is looked up in the
    /// created container's filesystem first, the way the runtime would.
    pub(super) async fn check_command(
        &self,
        docker: &Docker,
        id: &str,
        spec: &ContainerSpec,
        image: &ImageInspect,
    ) -> Result<(), String> {
        let config = image.config.as_ref();
        let first = |v: Option<&Vec<String>>| v.and_then(|v| v.first()).cloned();
        let entrypoint = first(config.and_then(|c| c.entrypoint.as_ref()));
        let given = first(spec.cmd.as_ref());
        let image_cmd = first(config.and_then(|c| c.cmd.as_ref()));
        let (prog, whose) = match (entrypoint, given, image_cmd) {
            (Some(p), _, _) => (p, " (the image's entrypoint)"),
            (None, Some(p), _) => (p, ""),
            (None, None, Some(p)) => (p, " (the image's command)"),
            (None, None, None) => return Ok(()),
        };
        let prog = &prog;
        let env_path = |env: &[String]| env.iter().rev().find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
        let path_var = env_path(&spec.env)
            .or_else(|| config.and_then(|c| c.env.as_deref()).and_then(env_path))
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        let workdir =
            config.and_then(|c| c.working_dir.clone()).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".to_string());
        let candidates: Vec<String> = if prog.contains('/') {
            vec![absolute_in(&workdir, prog)]
        } else {
            path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| absolute_in(&workdir, &format!("{}/{prog}", d.trim_end_matches('/'))))
                .collect()
        };
        // Images do not change under their id: a program found in one stays there. (Unless it
        // was found in the workspace, which is mounted and may change.)
        let key =
            (image.id.clone().unwrap_or_else(|| spec.image.clone()), prog.clone(), path_var.clone(), workdir.clone());
        if lock(&self.runnable).contains(&key) {
            return Ok(());
        }
        // Every place the program may be is looked at concurrently; the first in PATH order
        // decides, as it would for the shell.
        let kinds = futures_util::future::join_all(candidates.iter().map(|c| self.path_kind(docker, id, c))).await;
        for (kind, candidate) in kinds.into_iter().zip(&candidates) {
            match kind {
                Ok(PathKind::Executable) => {
                    let mounted = spec.workspace.as_ref().is_some_and(|w| candidate.starts_with(w.container.as_str()));
                    if !mounted {
                        lock(&self.runnable).insert(key);
                    }
                    return Ok(());
                }
                Ok(PathKind::NotExecutable) if prog.contains('/') => {
                    return Err(format!(
                        "container {}: cannot run \"{prog}\"{whose}: it is not an executable file",
                        spec.name
                    ))
                }
                Ok(PathKind::NotExecutable | PathKind::Missing) => {}
                Err(e) => {
                    // Not a verdict: let the runtime decide.
                    debug!(container = spec.name, error = %e, "cannot check the command");
                    return Ok(());
                }
            }
        }
        if prog.contains('/') {
            Err(format!(
                "container {}: cannot run \"{prog}\"{whose}: no such file in image \"{}\"",
                spec.name, spec.image
            ))
        } else {
            Err(format!(
                "container {}: executable \"{prog}\"{whose} was not found in $PATH ({path_var}) \
                 of image \"{}\"",
                spec.name, spec.image
            ))
        }
    }

    /// What is at `path` in the container's filesystem, following symbolic links.
    async fn path_kind(&self, docker: &Docker, id: &str, path: &str) -> Result<PathKind, CallError> {
        let mut path = path.to_string();
        for _ in 0..16 {
            let options = ContainerArchiveInfoOptions { path: path.clone() };
            let stat = self
                .client
                .call_bounded(
                    &format!("looking for {path} in the container"),
                    docker.get_container_archive_info(id, Some(options)),
                )
                .await;
            let stat = match stat {
                Ok(s) => s,
                Err(e) if e.is_not_found() => return Ok(PathKind::Missing),
                Err(e) => return Err(e),
            };
            let mode = stat.file_mode;
            if mode & MODE_SYMLINK != 0 && !stat.link_target.is_empty() {
                let dir = match path.rfind('/') {
                    Some(0) | None => "/".to_string(),
                    Some(i) => path[..i].to_string(),
                };
                path = absolute_in(&dir, &stat.link_target);
                continue;
            }
            if mode & MODE_DIR != 0 || mode & MODE_TYPE != 0 || mode & 0o111 == 0 {
                return Ok(PathKind::NotExecutable);
            }
            return Ok(PathKind::Executable);
        }
        Ok(PathKind::NotExecutable)
    }

    /// Catches the init process's report of a command it could not execute.
    pub(super) async fn check_exec_failure(
        &self,
        docker: &Docker,
        id: &str,
        name: &str,
        info: &ContainerInspectResponse,
    ) -> Result<(), String> {
        let Some(state) = &info.state else {
            return Ok(());
        };
        if state.running.unwrap_or(false) || !matches!(state.exit_code, Some(126 | 127)) {
            return Ok(());
        }
        let what = format!("reading the log of container {id}");
        let read = logs::read_log(&self.client, &what, 20, 4096, |options| docker.logs(id, Some(options)));
        let Ok((log, _)) = read.await else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&log);
        match text.lines().find(|l| l.contains("[FATAL tini")) {
            Some(line) => {
                let reason = line.split_once("] ").map_or(line, |(_, r)| r).trim();
                Err(format!("container {name}: the command could not be run: {reason}"))
            }
            None => Ok(()),
        }
    }
}

/// `path` made absolute relative to `dir`, with `.` and `..` resolved.
fn absolute_in(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", dir.trim_end_matches('/')) };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(absolute_in("/", "bin/sh"), "/bin/sh");
        assert_eq!(absolute_in("/usr/bin", "../lib/x"), "/usr/lib/x");
        assert_eq!(absolute_in("/app", "./run.sh"), "/app/run.sh");
        assert_eq!(absolute_in("/app", "/bin/busybox"), "/bin/busybox");
    }
}
