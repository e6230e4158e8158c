//! What a request presents to identify its caller, read the way CKAN 2.12 reads it
//! (docs/ckan-spec/ckan-auth.md §1): the configured token header, the session and remember-me cookies, and —
//! on the action API — a JSONP `callback`, which makes the caller anonymous whatever it sent.

use actix_web::http::header::HeaderMap;

use super::config::AccessSettings;

/// The credentials of one request, kept only for the duration of the request.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The token header's value, verbatim (CKAN accepts no `Bearer` prefix). Empty = absent.
    pub token: Option<String>,
    pub session_cookie: bool,
    pub remember_cookie: bool,
    /// On `/api/…` (cookies obey `ckan.auth.enable_cookie_auth_in_api`); dumps are not.
    pub via_api: bool,
    /// A `callback` parameter on an action call: CKAN runs the action anonymously.
    pub anonymous: bool,
    pub post: bool,
    /// Headers to forward when CKAN itself must decide (token header, Cookie, CSRF headers).
    pub forward: Vec<(String, String)>,
}

/// How the caller can be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identify {
    Anonymous,
    /// By the API token with this `jti`. `cookie_fallback`: if no active token row matches,
    /// the session cookie decides instead, so CKAN must be asked.
    Token {
        jti: String,
        cookie_fallback: bool,
    },
    /// Only CKAN can tell (cookies it signs, and their precedence rules).
    AskCkan,
}

/// Where a request arrived, which decides how its credentials count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api/…/action/…`: cookies obey `ckan.auth.enable_cookie_auth_in_api`; a JSONP
    /// `callback` makes the call anonymous.
    Action { jsonp: bool, post: bool },
    /// `GET /datastore/dump/<id>`: a plain page, cookies always count.
    Dump,
    /// The DataTables view's `POST` endpoints: plain pages, cookies always count.
    DataTables,
}

impl Presented {
    pub fn from_headers(
        headers: &HeaderMap,
        settings: &AccessSettings,
        surface: Surface,
    ) -> Presented {
        let (via_api, had_callback, post) = match surface {
            Surface::Action { jsonp, post } => (true, jsonp, post),
            Surface::Dump => (false, false, false),
            Surface::DataTables => (false, false, true),
        };
        let token = headers
            .get(settings.token_header.as_str())
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let mut p = Presented {
            token,
            via_api,
            anonymous: via_api && had_callback,
            post,
            ..Presented::default()
        };
        for value in headers.get_all("cookie") {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                if name == settings.session_cookie_name {
                    p.session_cookie = true;
                } else if name == settings.remember_cookie_name {
                    p.remember_cookie = true;
                }
            }
        }
        for name in [
            settings.token_header.as_str(),
            "cookie",
            "x-csrftoken",
            "x-csrf-token",
        ] {
            for v in headers.get_all(name) {
                if let Ok(v) = v.to_str() {
                    p.forward.push((name.to_string(), v.to_string()));
                }
            }
        }
        p
    }

    /// Flask-Login's `_load_user` with CKAN's callbacks (docs/ckan-spec/ckan-auth.md §1.2), reduced to what
    /// can be decided without CKAN's cookie secrets. `jti` is the token's id if its signature
    /// and claims are valid.
    pub fn identify(&self, jti: Option<String>, settings: &AccessSettings) -> Identify {
        if self.anonymous {
            return Identify::Anonymous;
        }
        let by_token = |cookie_fallback| match &jti {
            Some(j) => Identify::Token {
                jti: j.clone(),
                cookie_fallback,
            },
            None => Identify::Anonymous,
        };
        let cookies_count = !self.via_api || settings.enable_cookie_auth_in_api;
        if !cookies_count {
            // `load_user` returns nobody, so a remember cookie is a dead end (the token is not
            // consulted in that branch) — unless the session says `_remember: clear`, which
            // only CKAN can read.
            return match (self.remember_cookie, self.session_cookie) {
                (true, true) => Identify::AskCkan,
                (true, false) => Identify::Anonymous,
                _ => by_token(false),
            };
        }
        match (self.remember_cookie, self.session_cookie) {
            (false, false) => by_token(false),
            // A valid token beats the session's user; an invalid one leaves the cookie's.
            (false, true) => match jti {
                Some(_) => by_token(true),
                None => Identify::AskCkan,
            },
            (true, _) => Identify::AskCkan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn presented(pairs: &[(&str, &str)], via_api: bool, callback: bool) -> Presented {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let surface = match via_api {
            true => Surface::Action {
                jsonp: callback,
                post: true,
            },
            false => Surface::DataTables,
        };
        Presented::from_headers(&h, &AccessSettings::public(), surface)
    }

    #[test]
    fn precedence_follows_flask_login() {
        let s = AccessSettings::public();
        let jti = || Some("j".to_string());
        let tok = |fb| Identify::Token {
            jti: "j".into(),
            cookie_fallback: fb,
        };
        assert_eq!(
            presented(&[], true, false).identify(None, &s),
            Identify::Anonymous
        );
        let p = presented(&[("authorization", "t")], true, false);
        assert_eq!(p.identify(jti(), &s), tok(false));
        assert_eq!(p.identify(None, &s), Identify::Anonymous);
        let p = presented(&[("Authorization", "t")], true, true);
        assert_eq!(p.identify(jti(), &s), Identify::Anonymous, "callback");
        let p = presented(&[("Authorization", "t")], false, true);
        assert_eq!(
            p.identify(jti(), &s),
            tok(false),
            "callback is ignored by dumps"
        );
        let p = presented(&[("cookie", "ckan=abc; other=1")], true, false);
        assert_eq!(p.identify(None, &s), Identify::AskCkan);
        assert_eq!(p.identify(jti(), &s), tok(true));
        let p = presented(&[("cookie", "remember_token=garbage")], true, false);
        assert_eq!(p.identify(jti(), &s), Identify::AskCkan);
        let mut off = AccessSettings::public();
        off.enable_cookie_auth_in_api = false;
        assert_eq!(p.identify(jti(), &off), Identify::Anonymous);
        let p = presented(&[("cookie", "ckan=abc")], true, false);
        assert_eq!(p.identify(jti(), &off), tok(false));
        assert_eq!(p.identify(None, &off), Identify::Anonymous);
        let p = presented(&[("cookie", "ckan=abc")], false, false);
        assert_eq!(
            p.identify(None, &off),
            Identify::AskCkan,
            "dumps always read cookies"
        );
    }

    #[test]
    fn forwards_only_credentials() {
        let p = presented(
            &[
                ("authorization", "t"),
                ("cookie", "ckan=1"),
                ("x-csrftoken", "c"),
                ("user-agent", "u"),
            ],
            true,
            false,
        );
        let names: Vec<&str> = p.forward.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Authorization", "cookie", "x-csrftoken"]);
    }
}
