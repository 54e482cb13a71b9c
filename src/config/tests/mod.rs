//! Tests of the config module as a whole, against recorded Triton answers.

mod corpus;
