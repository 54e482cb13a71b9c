//! Tests of the config module as a whole, against recorded Triton answers.

mod corpus;
mod fuzz;
mod json;
mod normalize;
mod reflect;
mod roundtrip;
mod validate;
