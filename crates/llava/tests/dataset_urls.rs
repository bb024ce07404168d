//! Dataset images given by URL are fetched once into the cache (decision 14): checking the rows
//! twice, and loading the image, send one request; an unreachable URL is reported with its row.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::http::{Response, serve};
use llava::{DecodeOptions, FetchOptions};
use llava_data::{ImageCache, ImageRef};

#[test]
fn url_images_are_fetched_once_and_bad_ones_name_their_row() {
    let body = std::fs::read(llava_testutil::fixture("vision/images/tie_300x200.png")).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/cat.png" => {
            counter.fetch_add(1, Ordering::SeqCst);
            Response::ok("image/png", body.clone())
        }
        _ => Response::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.jsonl");
    std::fs::write(
        &data,
        format!(
            "{{\"query\": \"q\", \"response\": \"a\", \"images\": [\"{base}/cat.png\"]}}\n\
             {{\"query\": \"q\", \"response\": \"b\", \"images\": [\"{base}/cat.png\"]}}\n\
             {{\"query\": \"q\", \"response\": \"c\", \"images\": [\"{base}/gone.png\"]}}\n"
        ),
    )
    .unwrap();
    let (rows, problems) = llava_data::read::read_file_lenient(&data).unwrap();
    assert!(problems.is_empty());
    let cache = ImageCache {
        dir: dir.path().join("cache"),
        fetch: FetchOptions::default(),
        decode: DecodeOptions::default(),
    };
    for _ in 0..2 {
        let (sizes, problems) = cache.check_rows(&rows);
        let size = sizes[0].as_ref().unwrap()[0];
        assert_eq!((size.width, size.height), (300, 200));
        assert!(sizes[2].is_none());
        assert_eq!(problems.len(), 1);
        let p = problems[0].to_string();
        assert!(
            p.contains(&format!("{}:3, field `images`", data.display())) && p.contains("404"),
            "{p}"
        );
    }
    let image = cache.load(&ImageRef::of_row(&rows[1])[0]).unwrap();
    assert_eq!((image.width, image.height), (300, 200));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the URL was fetched more than once"
    );
}
