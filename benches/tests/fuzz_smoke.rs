//! A bounded smoke run of the fuzz targets' checks (`fuzz/src/lib.rs`) on
//! stable: every seed (built by `fuzz/seeds.sh` from real messages) and a
//! fixed set of mutants of each (bit flips, inserted, deleted and repeated
//! bytes, truncation, splices with another seed). A panic fails the test.
//! The coverage-guided runs are `cargo +nightly fuzz run` (fuzz/README.md).

use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("sip_message", voxgate_fuzz::sip_message),
    ("sdp", voxgate_fuzz::sdp),
    ("rtp", voxgate_fuzz::rtp),
    ("rtcp", voxgate_fuzz::rtcp),
    ("rfc4733", voxgate_fuzz::rfc4733),
    ("wav", voxgate_fuzz::wav),
    ("websocket", voxgate_fuzz::websocket),
];

/// Mutants of each seed.
const MUTANTS: usize = 2000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// xorshift64*: the same mutants on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 => m.insert(at, b"\0\r\n :;,=/<>@\"\xff0123456789"[rng.below(20)]),
            2 if at < m.len() => {
                m.remove(at);
            }
            3 => m.truncate(at),
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let piece = &other[from..(from + rng.below(64)).min(other.len())];
                m.splice(at..at, piece.iter().copied());
            }
            _ if at < m.len() => {
                let end = (at + rng.below(16)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            _ => {}
        }
    }
    m
}

#[test]
fn the_fuzz_targets_survive_their_seeds_and_mutants() {
    let corpus = std::env::temp_dir().join(format!("voxgate-fuzz-seeds-{}", std::process::id()));
    let made = std::process::Command::new("bash")
        .arg(root().join("fuzz/seeds.sh"))
        .arg(&corpus)
        .status()
        .expect("fuzz/seeds.sh runs");
    assert!(made.success(), "fuzz/seeds.sh failed");
    let mut rng = Rng(0x5EED_F0CC_1A7E_2026);
    for (target, check) in TARGETS {
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(corpus.join(target))
            .unwrap_or_else(|e| panic!("no seeds for {target}: {e}"))
            .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {target}");
        let mut runs = 0;
        for (i, seed) in seeds.iter().enumerate() {
            check(seed);
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..MUTANTS {
                let input = mutate(seed, other, &mut rng);
                let result = std::panic::catch_unwind(|| check(&input));
                assert!(result.is_ok(), "{target} panicked on {:?}", String::from_utf8_lossy(&input));
                runs += 1;
            }
        }
        eprintln!("{target}: {} seeds, {runs} mutants", seeds.len());
    }
    let _ = std::fs::remove_dir_all(&corpus);
}
