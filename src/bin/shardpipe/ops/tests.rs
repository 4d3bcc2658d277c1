use std::path::PathBuf;
use std::sync::Arc;

use shardpipe::images::{Image, Sample};

use super::{Value, matches, weighted_router};

fn m(p: &str, n: &str) -> bool {
    matches(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>())
}

#[test]
fn glob_patterns_match_names_as_shells_do() {
    assert!(m("*.bin", "file-00001.bin"));
    assert!(!m("*.bin", "file.binx"));
    assert!(m("file-?????.bin", "file-00001.bin"));
    assert!(!m("file-????.bin", "file-00001.bin"));
    assert!(m("*", ""));
    assert!(m("a*b*c", "a-x-b-y-c"));
}

/// How many of `values` a 1:3 weighted router sends down each path.
fn spread(values: &[Value]) -> [usize; 2] {
    let router = weighted_router(vec![1, 3]);
    let mut counts = [0; 2];
    values.iter().for_each(|v| counts[router(v)] += 1);
    counts
}

fn image(i: u64) -> Value {
    let path: Arc<std::path::Path> = PathBuf::from(format!("data/class-000/img-{i:06}.jpg")).into();
    let sample = Sample { index: i, epoch: 0, path, label: Some(0) };
    Value::Image(Image { sample, width: 2, height: 2, data: vec![7; 12] })
}

#[test]
fn decoded_images_and_batches_spread_over_the_paths_by_weight() {
    // Every image has the same size and pixels: only its file tells them apart.
    let images: Vec<Value> = (0..4000).map(image).collect();
    let [a, b] = spread(&images);
    assert!((800..1200).contains(&a) && a + b == 4000, "1:3 over 4000 images gave {a}:{b}");
    // Batches of the same length: their items tell them apart.
    let batches: Vec<Value> =
        (0..4000).map(|k| Value::Batch((0..32).map(|i| Value::Int(k * 32 + i)).collect())).collect();
    let [a, b] = spread(&batches);
    assert!((800..1200).contains(&a) && a + b == 4000, "1:3 over 4000 batches gave {a}:{b}");
    // The same item always takes the same path.
    let router = weighted_router(vec![1, 3]);
    assert!((0..100).all(|i| router(&image(i)) == router(&image(i))));
}
