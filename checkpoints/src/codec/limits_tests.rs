use super::tests::sample_state;
use super::*;

/// Refused, at the line of `needle` (the first line holding it at or after the line of
/// `after`), with a reason holding `why`.
#[track_caller]
fn refused_at(text: &str, after: &str, needle: &str, why: &str) {
    let e = decode(text).expect_err("must be refused");
    let from = text.lines().position(|l| l.contains(after)).unwrap();
    let line = from + text.lines().skip(from).position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!((e.line, e.reason.contains(why)), (line, true), "{e}");
    assert!(e.column > 0, "{e}");
}

#[test]
fn hand_edits_that_would_break_later_are_refused_with_their_place() {
    let text = encode(&sample_state()).unwrap();
    // Ids and uids with no room to grow, or reserved.
    refused_at(&text.replace("next_id: 9,", "next_id: 18446744073709551615,"), "", "next_id:", "ids would run out");
    refused_at(&text.replace("next_uid: 200003,", "next_uid: 4294967295,"), "", "next_uid:", "below it");
    refused_at(&text.replace("uid: 200001,", "uid: 65534,"), "", "uid: 65534", "reserved");
    // Counts, memory and cores no submission could give.
    let exec = "            id: 3,";
    for (from, to, why) in [
        ("total_count: 1,", "total_count: 4000000000,", "total_count 4000000000"),
        ("total_count: 1,", "total_count: 0,", "total_count 0"),
        ("essential_count: 1,", "essential_count: 2,", "essential_count 2"),
        ("memory: 268435456,", "memory: 18446744073709551615,", "memory 18446744073709551615"),
        ("cores: Some(1.5),", "cores: Some(NaN),", "cores NaN"),
        ("cores: Some(1.5),", "cores: Some(inf),", "cores inf"),
        ("cores: Some(1.5),", "cores: Some(-1.0),", "cores -1"),
        ("priority: 512,", "priority: 4000000000,", "priority"),
        ("docker_image: \"zoe-test-busybox:latest\",", "docker_image: \"a b\",", "docker_image"),
    ] {
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{from}");
        let field = to.split(':').next().unwrap();
        refused_at(&edited, exec, field, why);
    }
    // A running execution without its services, a service of no description, an ending
    // that cannot be reached.
    let no_services = {
        let mut s = sample_state();
        std::sync::Arc::make_mut(s.executions.get_mut(&3).unwrap()).services.clear();
        encode(&s).unwrap()
    };
    refused_at(&no_services, exec, "services: []", "0 service records");
    refused_at(
        &text.replacen("service_name: \"jupyter\"", "service_name: \"spark\"", 1),
        exec,
        "id: 4,",
        "not a service",
    );
    refused_at(&text.replacen("ending: None,", "ending: Some(running),", 1), exec, "ending:", "ending running");
    // A name of 200,000 characters is quoted shortened.
    let long = "a".repeat(200_000);
    let e = decode(&text.replacen("name: \"alice\"", &format!("name: \"{long}\""), 1)).unwrap_err();
    assert!(e.reason.len() < 300 && e.reason.contains("(200000 bytes)"), "{e}");
}

#[test]
fn uids_skip_the_reserved_ones_and_run_out_at_the_limit() {
    let mut s = State::new("dev");
    s.next_uid = 65533;
    assert_eq!([s.gen_uid(), s.gen_uid()], [65533, 65536]);
    s.next_uid = UID_LIMIT - 1;
    assert!(s.uids_left());
    s.gen_uid();
    assert!(!s.uids_left());
}

#[test]
fn data_sets_are_kept_and_hand_edited_ones_held_to_the_submissions_rules() {
    let mut s = sample_state();
    std::sync::Arc::make_mut(s.executions.get_mut(&3).unwrap()).application.services[0].datasets =
        vec!["corpus".into(), "imagenet".into()];
    let text = encode(&s).unwrap();
    let written = text.lines().skip_while(|l| !l.contains("datasets: [")).take(4).collect::<Vec<_>>().join("\n");
    assert_eq!(written.split_whitespace().collect::<String>(), "datasets:[\"corpus\",\"imagenet\",],", "{text}");
    assert_eq!(decode(&text).unwrap(), s);
    // Without data sets nothing is written: older checkpoints and this format's are the same.
    assert!(!encode(&sample_state()).unwrap().contains("datasets"));
    let exec = "            id: 3,";
    let many = format!("datasets: [{}]", vec!["\"a\""; 17].join(", "));
    for to in ["datasets: [\"Corpus\"]", "datasets: [\"../etc\"]", "datasets: [\"a\", \"a\"]", many.as_str()] {
        let edited = text.replacen(&written, &format!("{}{to},", " ".repeat(24)), 1);
        assert_ne!(edited, text);
        refused_at(&edited, exec, "datasets:", "datasets must be at most 16 distinct data set names");
    }
}
