//! One definition per body: [`body!`] writes a struct and its rule table
//! from the same lines, so a field's type, its serde attributes and its
//! rule stand together, once.
//!
//! ```text
//! body! {
//!     /// doc of the struct
//!     #[derive(Clone, Debug, Serialize, Deserialize)]
//!     pub struct ImageMeta in IMAGE_META {
//!         /// doc of the field
//!         pub file_name: String = required(id(128, true)),
//!         pub bank_type: Option<String> = optional(id(32, true)),
//!         pub field_type: FieldType = required(Kind::Enum(TYPES)) as "type",
//!         #[serde(skip)]
//!         pub card_id: String,
//!     }
//! }
//! ```
//!
//! A field's presence is one of:
//! - `required(kind)`: must be present;
//! - `optional(kind)`: may be absent; the field is an `Option`, read as
//!   absent when `null` and left out when `None` (the macro writes the
//!   serde attributes);
//! - `created(kind)`: an `Option` that creation requires but an answer
//!   about something created before the rule may lack (see [`answered`]);
//! - `flatten(TABLE)`: a struct flattened into this one; its rules are
//!   `TABLE`'s, in place;
//! - none: not part of the body (a path value), its own attributes say so.
//!
//! `as "wire"` names a field whose wire name is not its Rust name. Every
//! field line ends with a comma. The table is `pub(crate) const TABLE:
//! &[Field]`, in field order: the order the rules are checked in and the
//! order of the published schema.

use super::{Field, Kind};

/// A field's wire name: `as "wire"` if given, else the Rust name.
macro_rules! wire_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $wire:literal) => {
        $wire
    };
}
pub(crate) use wire_name;

/// Defines a body's struct and its rule table at once (module docs).
macro_rules! body {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident in $table:ident { $($fields:tt)* }
    ) => {
        $crate::validation::define::body!(
            @munch [$(#[$attr])* $vis struct $name in $table] [] [] $($fields)*
        );
    };
    (@munch $head:tt [$($out:tt)*] [$($rules:tt)*]
        $(#[$m:meta])* $v:vis $f:ident : $t:ty = required($kind:expr) $(as $wire:literal)?,
        $($rest:tt)*
    ) => {
        $crate::validation::define::body!(@munch $head
            [$($out)* $(#[$m])* $(#[serde(rename = $wire)])? $v $f: $t,]
            [$($rules)* &[$crate::validation::required(
                $crate::validation::define::wire_name!($f $($wire)?), $kind)],]
            $($rest)*);
    };
    (@munch $head:tt [$($out:tt)*] [$($rules:tt)*]
        $(#[$m:meta])* $v:vis $f:ident : $t:ty = optional($kind:expr) $(as $wire:literal)?,
        $($rest:tt)*
    ) => {
        $crate::validation::define::body!(@munch $head
            [$($out)* $(#[$m])* $(#[serde(rename = $wire)])?
                #[serde(default, skip_serializing_if = "Option::is_none")] $v $f: $t,]
            [$($rules)* &[$crate::validation::optional(
                $crate::validation::define::wire_name!($f $($wire)?), $kind)],]
            $($rest)*);
    };
    (@munch $head:tt [$($out:tt)*] [$($rules:tt)*]
        $(#[$m:meta])* $v:vis $f:ident : $t:ty = created($kind:expr),
        $($rest:tt)*
    ) => {
        $crate::validation::define::body!(@munch $head
            [$($out)* $(#[$m])*
                #[serde(default, skip_serializing_if = "Option::is_none")] $v $f: $t,]
            [$($rules)* &[$crate::validation::define::created(stringify!($f), $kind)],]
            $($rest)*);
    };
    (@munch $head:tt [$($out:tt)*] [$($rules:tt)*]
        $(#[$m:meta])* $v:vis $f:ident : $t:ty = flatten($inner:expr),
        $($rest:tt)*
    ) => {
        $crate::validation::define::body!(@munch $head
            [$($out)* $(#[$m])* #[serde(flatten)] $v $f: $t,]
            [$($rules)* $inner,]
            $($rest)*);
    };
    (@munch $head:tt [$($out:tt)*] [$($rules:tt)*]
        $(#[$m:meta])* $v:vis $f:ident : $t:ty,
        $($rest:tt)*
    ) => {
        $crate::validation::define::body!(@munch $head
            [$($out)* $(#[$m])* $v $f: $t,]
            [$($rules)*]
            $($rest)*);
    };
    (@munch [$(#[$attr:meta])* $vis:vis struct $name:ident in $table:ident]
        [$($out:tt)*] [$($rules:tt)*]
    ) => {
        $(#[$attr])*
        $vis struct $name { $($out)* }

        pub(crate) const $table: &[$crate::validation::Field] = {
            const PARTS: &[&[$crate::validation::Field]] = &[$($rules)*];
            const ARRAY: [$crate::validation::Field;
                $crate::validation::define::count(PARTS)] =
                $crate::validation::define::concat(PARTS);
            &ARRAY
        };
    };
}
pub(crate) use body;

/// A field creation requires that an answer may lack (`created(kind)`).
pub(crate) const fn created(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
        answers_may_lack: true,
    }
}

/// How many fields the parts hold.
pub(crate) const fn count(parts: &[&[Field]]) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < parts.len() {
        total += parts[i].len();
        i += 1;
    }
    total
}

/// The parts' fields in one array, in order; `N` is their [`count`].
pub(crate) const fn concat<const N: usize>(parts: &[&[Field]]) -> [Field; N] {
    let mut out = [PLACEHOLDER; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[at] = parts[i][j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(at == N, "the array's length is the parts' count");
    out
}

/// A table as answers follow it: the fields marked `created` become
/// optional; `N` is the table's length.
pub(crate) const fn answered<const N: usize>(table: &[Field]) -> [Field; N] {
    let mut out = concat::<N>(&[table]);
    let mut i = 0;
    while i < N {
        if out[i].answers_may_lack {
            out[i].required = false;
        }
        i += 1;
    }
    out
}

const PLACEHOLDER: Field = Field {
    name: "",
    required: false,
    kind: Kind::Bool,
    answers_may_lack: false,
};

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::answered;
    use crate::validation::{Field, Kind, id};

    body! {
        /// Inner.
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Inner in INNER {
            made: Option<String> = created(id(8, true)),
        }
    }

    body! {
        /// Every presence once.
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct Outer in OUTER {
            #[serde(skip)]
            path: String,
            needed: String = required(id(8, true)),
            kind: String = required(id(8, true)) as "type",
            maybe: Option<String> = optional(id(8, true)),
            inner: Inner = flatten(INNER),
        }
    }

    const ANSWERED_INNER: [Field; INNER.len()] = answered(INNER);

    #[test]
    fn the_table_follows_the_struct_in_order_with_wire_names_and_no_path_values() {
        let table: Vec<(&str, bool)> = OUTER.iter().map(|f| (f.name, f.required)).collect();
        assert_eq!(
            table,
            [
                ("needed", true),
                ("type", true),
                ("maybe", false),
                ("made", true)
            ]
        );
        assert!(matches!(OUTER[0].kind, Kind::Str { max: 8, .. }));
    }

    #[test]
    fn created_fields_are_required_on_creation_and_optional_in_answers() {
        assert!(INNER[0].required && INNER[0].answers_may_lack);
        assert!(!ANSWERED_INNER[0].required);
    }

    #[test]
    fn the_struct_reads_and_writes_what_the_table_describes() {
        let outer = Outer {
            path: "p".into(),
            needed: "n".into(),
            kind: "k".into(),
            maybe: None,
            inner: Inner {
                made: Some("m".into()),
            },
        };
        let written = serde_json::to_value(&outer).unwrap();
        assert_eq!(written, json!({"needed": "n", "type": "k", "made": "m"}));
        let read: Outer =
            serde_json::from_value(json!({"needed": "n", "type": "k", "maybe": null})).unwrap();
        assert_eq!(read.maybe, None);
        assert_eq!(read.inner.made, None);
        assert_eq!(read.path, "");
    }
}
