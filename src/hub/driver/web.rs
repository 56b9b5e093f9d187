//! The browser front end the hub serves on its port: the room list at `/` and the
//! live skeleton viewer at `/view/<room>`, with their scripts and stylesheet. The
//! files live in `web/` and are compiled into the binary (no CDN, nothing to
//! install or build); `docs/VIEWER.md` describes the pages and the JavaScript
//! module that decodes the binary protocol in the browser.

/// A file the hub serves.
pub struct Asset {
    /// The bytes.
    pub body: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static INDEX: Asset = Asset {
    body: include_str!("../../../web/index.html"),
    content_type: HTML,
};
static INDEX_JS: Asset = Asset {
    body: include_str!("../../../web/index.js"),
    content_type: JS,
};
static VIEWER: Asset = Asset {
    body: include_str!("../../../web/viewer.html"),
    content_type: HTML,
};
static VIEWER_JS: Asset = Asset {
    body: include_str!("../../../web/viewer.js"),
    content_type: JS,
};
static VIEWER_CSS: Asset = Asset {
    body: include_str!("../../../web/viewer.css"),
    content_type: CSS,
};
static MODULE: Asset = Asset {
    body: include_str!("../../../web/poselink.js"),
    content_type: JS,
};

/// The largest file served, bytes (what one socket's answer may copy).
pub fn largest() -> usize {
    [&INDEX, &INDEX_JS, &VIEWER, &VIEWER_JS, &VIEWER_CSS, &MODULE]
        .iter()
        .map(|a| a.body.len())
        .max()
        .unwrap_or(0)
}

/// The file for a request path (without its query), if the front end has one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    Some(match path {
        "/" | "/index.html" => &INDEX,
        "/index.js" => &INDEX_JS,
        "/viewer.js" => &VIEWER_JS,
        "/viewer.css" => &VIEWER_CSS,
        "/poselink.js" => &MODULE,
        p if p.starts_with("/view/") && p.len() > "/view/".len() => &VIEWER,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_end_is_complete() {
        assert_eq!(asset("/").unwrap().content_type, HTML);
        assert_eq!(asset("/view/demo-0").unwrap().content_type, HTML);
        assert!(asset("/view/").is_none());
        assert!(asset("/nothing").is_none());
        // Every script and stylesheet a page names is served.
        for page in [&INDEX, &VIEWER] {
            for part in page.body.split(['"', '\'']) {
                if part.starts_with('/') && (part.ends_with(".js") || part.ends_with(".css")) {
                    assert!(asset(part).is_some(), "{part} is named but not served");
                }
            }
        }
        // The viewer's script imports the module from the path served.
        assert!(VIEWER_JS.body.contains("/poselink.js"));
    }
}
