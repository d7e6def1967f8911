//! Workspace files (10.): upload (`PUT /api/0.6/workspace/<path>`) and download (`GET`) of a
//! 200 MiB file with curl against `cp` of the same file between the same places (the host's disk
//! and the workspace, a file system image of the quota mounted from the same disk), in turns, on
//! one master with a workspace image (issue 26; goal: each at least half of `cp`'s rate).

use super::*;

const SIZE: usize = 200 << 20;
const ROUNDS: usize = 5;

pub fn files() {
    let dir = prepare_dir("files", 0);
    let ws_base = dir.join("ws");
    let base = ws_base.to_str().unwrap().to_string();
    let (master, addr) = master_process(
        &dir,
        &[UNLIMITED, &NO_USER_LIMITS, &["--workspace-base-path", &base, "--workspace-quota", "2GiB"]].concat(),
    );
    let url = format!("http://{addr}/api/0.6/workspace");
    // The workspace, made (and its image mounted) by a first listing.
    assert!(
        run("curl", &["-sSf", "-o", "/dev/null", "-u", "alice:alice-pw", &format!("{url}/")]),
        "cannot list the workspace"
    );
    let workspace = ws_base.join("bench/alice");
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let source = host.join("source.bin");
    let mut bytes = vec![0u8; SIZE];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&source, &bytes).unwrap();
    drop(bytes);
    let (src, in_ws, back) = (
        source.to_str().unwrap().to_string(),
        workspace.join("copy.bin").to_str().unwrap().to_string(),
        host.join("back.bin").to_str().unwrap().to_string(),
    );
    let (mut cp_in, mut put, mut cp_out, mut get) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Into the workspace: cp, then the API.
        let _ = std::fs::remove_file(&in_ws);
        cp_in.push(timed(|| run("cp", &[&src, &in_ws])));
        let _ = std::fs::remove_file(&in_ws);
        put.push(timed(|| {
            run(
                "curl",
                &[
                    "-sSf",
                    "-o",
                    "/dev/null",
                    "-u",
                    "alice:alice-pw",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-T",
                    &src,
                    &format!("{url}/copy.bin"),
                ],
            )
        }));
        assert_eq!(std::fs::metadata(&in_ws).map(|m| m.len()).unwrap_or(0), SIZE as u64, "the upload is whole");
        // Out of it: cp, then the API.
        let _ = std::fs::remove_file(&back);
        cp_out.push(timed(|| run("cp", &[&in_ws, &back])));
        let _ = std::fs::remove_file(&back);
        get.push(timed(|| run("curl", &["-sSf", "-u", "alice:alice-pw", "-o", &back, &format!("{url}/copy.bin")])));
        assert_eq!(std::fs::metadata(&back).map(|m| m.len()).unwrap_or(0), SIZE as u64, "the download is whole");
    }
    let mb = SIZE as f64 / (1 << 20) as f64;
    let rate = |v: &[f64]| mb / median(v.to_vec());
    println!(
        "\nworkspace files, 200 MiB, median of {ROUNDS} (curl; cp between the same places, in turns):\n  \
         upload   {:.0} MiB/s, cp into the workspace {:.0} MiB/s: {:.2}x of cp (goal: at least 0.5x)\n  \
         download {:.0} MiB/s, cp out of the workspace {:.0} MiB/s: {:.2}x of cp (goal: at least 0.5x)",
        rate(&put),
        rate(&cp_in),
        rate(&put) / rate(&cp_in),
        rate(&get),
        rate(&cp_out),
        rate(&get) / rate(&cp_out),
    );
    stop(master);
    unmount_workspaces();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds `f` took; it must succeed.
fn timed(f: impl FnOnce() -> bool) -> f64 {
    let t = Instant::now();
    assert!(f(), "a transfer failed");
    t.elapsed().as_secs_f64()
}

fn run(program: &str, args: &[&str]) -> bool {
    std::process::Command::new("timeout")
        .args(["-k", "5", "300", program])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}
