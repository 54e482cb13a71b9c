//! Tests of the config module as a whole, against recorded Triton answers.

mod corpus;
mod roundtrip;
mod reflect;
mod json;
mod normalize;
mod validate;
