use super::*;
use proptest::prelude::*;

fn sample_text() -> String {
    include_str!("../../../tests/fixtures/checkpoints/v4_running_and_finished.ron").to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_refused_cleanly(text in ".{0,300}") {
        if let Err(e) = decode(&text) {
            prop_assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn edited_checkpoints_load_or_are_refused_with_a_place(
        at in any::<prop::sample::Index>(),
        cut in any::<bool>(),
        insert in prop::sample::select(vec!["", "(", ")", ",", "]", "\"", "9", "-1", "None", "Some(", "role: root,", "id: 3,", "ending: Some(running),", "\n", "//", "\u{0}", "é"]),
    ) {
        let text = sample_text();
        let mut i = at.index(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        let edited = if cut { text[..i].to_string() } else { format!("{}{insert}{}", &text[..i], &text[i..]) };
        match decode(&edited) {
            Ok(state) => prop_assert!(validate(&state).is_ok()),
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
    }
}
