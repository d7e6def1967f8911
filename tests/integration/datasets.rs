//! Data sets (issue 26): folders the administrator names with `--dataset NAME=HOSTPATH`,
//! mounted read-only at `/mnt/datasets/NAME` in the services that name them. In a real container
//! a data set is read and cannot be written (its folder mode 0777, so only the mount stops the
//! writes), a file system mounted beneath it on the host is not seen; a description cannot name
//! an unknown data set nor mount a host path itself; the listing shows sizes to administrators
//! only.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::docker::{application, docker_master_with, exec_in, inspect, service, wait_status, IMAGE};
use crate::common::{app, assert_error, temp_dir, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-pw");

/// A data set folder, `<temp>/<tag>/data`, everyone's to write (mode 0777, its file 0666): in a
/// container only the read-only mount can stop a write. Returns the folder.
fn world_writable_dataset(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let data = temp_dir(tag).join("data");
    std::fs::create_dir_all(data.join("train")).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the data set\n").unwrap();
    std::fs::write(data.join("train/part-0"), vec![7u8; 4096]).unwrap();
    for (path, mode) in [(data.clone(), 0o777), (data.join("train"), 0o777), (data.join("hello.txt"), 0o666)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    data
}

/// Unmounts a folder when dropped, even on failure.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("timeout").args(["-k", "5", "30", "umount"]).arg(&self.0).status();
    }
}

fn with_datasets(service: Value, datasets: Value) -> Value {
    let mut s = service;
    s["datasets"] = datasets;
    s
}

fn a_dataset_flag(name: &str, folder: &Path) -> String {
    format!("{name}={}", folder.display())
}

#[test]
fn a_dataset_is_readable_and_not_writable_in_a_container() {
    let data = world_writable_dataset("ds-ro");
    // A file system mounted beneath the data set on the host (writable there): the mount is not
    // recursive, so a container sees the empty folder under it, never this tmpfs.
    let inner = data.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m,mode=1777", "tmpfs"]).arg(&inner).status();
    assert!(mounted.is_ok_and(|s| s.success()), "the test mounts a tmpfs (it runs as root, as the master does)");
    let _unmount = Unmount(inner.clone());
    std::fs::write(inner.join("beneath.txt"), "on another file system\n").unwrap();

    let flag = a_dataset_flag("corpus", &data);
    let other = world_writable_dataset("ds-other");
    let other_flag = a_dataset_flag("other", &other);
    let (m, _cleanup, dep) = docker_master_with("ds-ro", &["--dataset", &flag, "--dataset", &other_flag]);
    m.create_user("alice", "user", ALICE.1);
    let main = with_datasets(service("main", true, 1, 0, "sleep 600", json!([])), json!(["corpus"]));
    let id = m.submit(ALICE, "ro", &application(vec![main]));
    let e = wait_status(&m, ALICE, id, &["running", "error"], 60);
    assert_eq!(e["status"], "running", "{e}");
    assert_eq!(e["application"]["services"][0]["datasets"], json!(["corpus"]), "the description keeps its data sets");
    let container = format!("main-ro-alice-{dep}");

    // Read: the files, as the owner's uid.
    let (ok, out) =
        exec_in(&container, "cat /mnt/datasets/corpus/hello.txt && wc -c < /mnt/datasets/corpus/train/part-0");
    assert!(ok, "{out}");
    assert!(out.contains("hello from the data set") && out.contains("4096"), "{out}");
    let (ok, out) = exec_in(&container, "ls -A /mnt/datasets/corpus/inner; ls /mnt/datasets");
    assert!(ok, "{out}");
    assert!(!out.contains("beneath.txt"), "the file system beneath the data set is not seen: {out}");
    assert!(!out.contains("other"), "only the named data sets are there: {out}");

    // Write: every way fails, whatever the folder's mode says.
    for attempt in [
        "echo x > /mnt/datasets/corpus/new.txt",
        "echo x >> /mnt/datasets/corpus/hello.txt",
        "rm -f /mnt/datasets/corpus/hello.txt",
        "mkdir /mnt/datasets/corpus/dir",
        "mv /mnt/datasets/corpus/train /mnt/datasets/corpus/moved",
        "touch /mnt/datasets/corpus/inner/x",
        "chmod 700 /mnt/datasets/corpus",
        "touch /mnt/datasets/new",
        "mount -o remount,rw /mnt/datasets/corpus",
    ] {
        let (ok, out) = exec_in(&container, attempt);
        assert!(!ok, "{attempt} succeeded: {out}");
    }
    let (_, out) = exec_in(&container, "echo x > /mnt/datasets/corpus/new.txt");
    assert!(out.contains("Read-only file system"), "{out}");
    // Nothing changed on the host.
    let mut names: Vec<String> =
        std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "inner", "train"]);
    assert_eq!(std::fs::read_to_string(data.join("hello.txt")).unwrap(), "hello from the data set\n");
    let mut inner_names: Vec<String> =
        std::fs::read_dir(&inner).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    inner_names.sort();
    assert_eq!(inner_names, ["beneath.txt"]);
    // What Docker was told (after what the container could do, which is what counts): one
    // read-only bind of the configured folder, and nothing of the data set it did not name.
    let mounts = inspect(&container)["Mounts"].as_array().cloned().unwrap_or_default();
    let dataset_mounts: Vec<&Value> =
        mounts.iter().filter(|mt| mt["Destination"].as_str().is_some_and(|d| d.starts_with("/mnt/datasets"))).collect();
    assert_eq!(dataset_mounts.len(), 1, "{mounts:?}");
    assert_eq!(dataset_mounts[0]["Destination"], "/mnt/datasets/corpus");
    assert_eq!(dataset_mounts[0]["Source"], data.to_str().unwrap());
    assert_eq!(dataset_mounts[0]["RW"], false, "{mounts:?}");

    assert_eq!(m.delete(&format!("/api/0.6/execution/{id}"), ALICE).0, 204);
    wait_status(&m, ALICE, id, &["terminated"], 60);
}

#[test]
fn a_description_names_only_configured_datasets_and_mounts_no_host_path() {
    let data = world_writable_dataset("ds-names");
    let flag = a_dataset_flag("corpus", &data);
    let dir = temp_dir("ds-names-state");
    let m = Master::start_in(&dir, &["--no-docker", "--dataset", &flag]);
    m.create_user("alice", "user", ALICE.1);
    let named = |datasets: Value| {
        let mut a = app(IMAGE, Some("true"));
        a["services"][0]["datasets"] = datasets;
        a
    };
    let submit = |a: &Value| m.post("/api/0.6/execution", ALICE, &json!({"name": "ds", "application": a}));

    let refused = submit(&named(json!(["corpus", "imagenet"])));
    assert_error(&refused, 400, "unknown_dataset");
    let message = refused.1["message"].as_str().unwrap();
    assert!(message.starts_with("application.services[0].datasets[1]: "), "{message}");
    assert!(message.contains("\"imagenet\""), "{message}");
    for (datasets, code, path) in [
        (json!(["corpus", "corpus"]), "duplicate_dataset", "application.services[0].datasets[1]: "),
        (json!(["../etc"]), "invalid_name", "application.services[0].datasets[0]: "),
        (json!(["/srv/data"]), "invalid_name", "application.services[0].datasets[0]: "),
        (json!([{"host_path": "/etc"}]), "wrong_type", "application.services[0].datasets[0]: "),
        (json!("corpus"), "wrong_type", "application.services[0].datasets: "),
        (json!(vec!["corpus"; 17]), "out_of_range", "application.services[0].datasets: "),
    ] {
        let refused = submit(&named(datasets.clone()));
        assert_error(&refused, 400, code);
        let message = refused.1["message"].as_str().unwrap();
        assert!(message.starts_with(path), "{datasets}: {message}");
    }
    // The hostile ways to the same folder, writable: a host path volume, of any shape.
    let mut volumes = app(IMAGE, Some("true"));
    let folder = data.to_str().unwrap();
    volumes["services"][0]["volumes"] =
        json!([{"host_path": folder, "container_path": "/mnt/datasets/corpus", "readonly": false}]);
    assert_error(&submit(&volumes), 400, "volumes_not_allowed");
    volumes["services"][0]["volumes"] = json!([[folder, "/mnt/datasets/corpus", false]]);
    assert_error(&submit(&volumes), 400, "volumes_not_allowed");
    // Nothing of the refusals was kept.
    assert_eq!(m.get("/api/0.6/execution", ALICE).1, json!([]));

    // The configured name is accepted, and kept in the description as sent.
    let id = m.submit(ALICE, "ds", &named(json!(["corpus"])));
    let (_, e) = m.get(&format!("/api/0.6/execution/{id}"), ALICE);
    assert_eq!(e["application"]["services"][0]["datasets"], json!(["corpus"]));
}

#[test]
fn the_listing_shows_names_to_users_and_sizes_to_administrators() {
    let data = world_writable_dataset("ds-list");
    let empty = temp_dir("ds-list-empty");
    let dir = temp_dir("ds-list-state");
    let flags = [a_dataset_flag("corpus", &data), a_dataset_flag("empty", &empty)];
    let m = Master::start_in(&dir, &["--no-docker", "--dataset", &flags[0], "--dataset", &flags[1]]);
    m.create_user("alice", "user", ALICE.1);

    let (s, list) = m.get("/api/0.6/datasets", ALICE);
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        list,
        json!([
            {"name": "corpus", "mount": "/mnt/datasets/corpus"},
            {"name": "empty", "mount": "/mnt/datasets/empty"}
        ]),
        "a user sees names and mounts, neither host folders nor sizes"
    );
    let (s, list) = m.get("/api/0.6/datasets", ADMIN);
    assert_eq!(s, 200, "{list}");
    let corpus = &list[0];
    assert_eq!(corpus["name"], "corpus");
    assert_eq!(corpus["host_path"], data.to_str().unwrap());
    let hello = "hello from the data set\n".len() as u64;
    assert_eq!(corpus["size"]["bytes"], hello + 4096, "{corpus}");
    assert_eq!(corpus["size"]["files"], 2, "{corpus}");
    assert_eq!(corpus["size"]["complete"], true, "{corpus}");
    assert!(corpus["size"]["measured_at"].is_string(), "{corpus}");
    assert_eq!(list[1]["size"]["bytes"], 0, "{list}");
    // Kept: a file added now shows after the cache's ten minutes, not at once.
    std::fs::write(data.join("more"), vec![1u8; 100]).unwrap();
    assert_eq!(m.get("/api/0.6/datasets", ADMIN).1[0]["size"], corpus["size"]);

    assert_eq!(m.call("GET", "/api/0.6/datasets", None, None).0, 401);
    assert_error(&m.post("/api/0.6/datasets", ADMIN, &json!({})), 405, "method_not_allowed");
    // Without data sets: an empty list.
    let bare = Master::start_in(&temp_dir("ds-list-bare"), &["--no-docker"]);
    assert_eq!(bare.get("/api/0.6/datasets", ADMIN), (200, json!([])));
}
