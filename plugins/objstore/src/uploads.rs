//! Reading a ListMultipartUploads answer (`GET /?uploads`): the same
//! `ListMultipartUploadsResult` document on S3, COS and OSS. It names the
//! unfinished uploads under a prefix, in order of key then upload, a page
//! at a time; `store::unfinished` pages through it to find the uploads of
//! one key.

use crate::xml;

/// One page of ListMultipartUploads.
#[derive(Debug, PartialEq, Eq)]
pub struct UploadsPage {
    /// `(Key, UploadId)` of each `<Upload>`, in the answer's order.
    pub uploads: Vec<(String, String)>,
    /// Where the next page starts, `(NextKeyMarker, NextUploadIdMarker)`,
    /// when the answer is truncated. The upload id marker may be empty:
    /// the next page then starts after the key.
    pub next: Option<(String, String)>,
}

/// The page `body` holds; `Ok(None)` when it is no
/// `ListMultipartUploadsResult` (a server that ignored `?uploads` and
/// listed objects instead); an error says what a page lacks.
pub fn parse_page(body: &str) -> Result<Option<UploadsPage>, String> {
    if xml::elements(body, "ListMultipartUploadsResult").is_empty() {
        return Ok(None);
    }
    let mut uploads = Vec::new();
    for u in xml::elements(body, "Upload") {
        let key = xml::text(u, "Key").ok_or("an <Upload> without <Key>")?;
        let id = xml::text(u, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("the <Upload> of {key:?} has no <UploadId>"))?;
        uploads.push((key, id));
    }
    let next = if xml::text(body, "IsTruncated").as_deref() == Some("true") {
        let key = xml::text(body, "NextKeyMarker")
            .filter(|k| !k.is_empty())
            .ok_or("a truncated page without <NextKeyMarker>")?;
        Some((
            key,
            xml::text(body, "NextUploadIdMarker").unwrap_or_default(),
        ))
    } else {
        None
    };
    Ok(Some(UploadsPage { uploads, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer shaped as in the S3 API reference (ListMultipartUploads),
    /// with the elements S3 adds and a reader must skip.
    const S3_PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>
      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>
    </Initiator>
    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</UploadId>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn reads_uploads_and_the_next_markers() {
        let page = parse_page(S3_PAGE).unwrap().unwrap();
        assert_eq!(
            page.uploads,
            [
                (
                    "my-divisor".to_string(),
                    "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw".to_string()
                ),
                (
                    "my-movie.m2ts".to_string(),
                    "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".to_string()
                ),
            ]
        );
        assert_eq!(
            page.next,
            Some((
                "my-movie.m2ts".to_string(),
                "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".to_string()
            ))
        );
    }

    #[test]
    fn a_last_page_an_empty_page_and_escaped_keys() {
        // `<UploadIdMarker>` and `<NextUploadIdMarker>` are not `<Upload>`s.
        let last = "<ListMultipartUploadsResult><UploadIdMarker>x</UploadIdMarker>\
            <IsTruncated>false</IsTruncated><Upload><Key>a&amp;b/c</Key>\
            <UploadId>ID1</UploadId></Upload></ListMultipartUploadsResult>";
        assert_eq!(
            parse_page(last).unwrap().unwrap(),
            UploadsPage {
                uploads: vec![("a&b/c".into(), "ID1".into())],
                next: None
            }
        );
        let empty = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
            <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(
            parse_page(empty).unwrap().unwrap(),
            UploadsPage {
                uploads: Vec::new(),
                next: None
            }
        );
        let key_only = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>k</NextKeyMarker></ListMultipartUploadsResult>";
        assert_eq!(
            parse_page(key_only).unwrap().unwrap().next,
            Some(("k".into(), String::new()))
        );
    }

    #[test]
    fn an_object_listing_is_no_page_and_a_broken_page_is_an_error() {
        let objects = "<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>k</Key></Contents></ListBucketResult>";
        assert_eq!(parse_page(objects), Ok(None));
        assert_eq!(
            parse_page("<Error><Code>NotImplemented</Code></Error>"),
            Ok(None)
        );
        let no_id = "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>\
            </ListMultipartUploadsResult>";
        assert!(parse_page(no_id).unwrap_err().contains("UploadId"));
        let no_marker = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
            </ListMultipartUploadsResult>";
        assert!(parse_page(no_marker).unwrap_err().contains("NextKeyMarker"));
    }
}
