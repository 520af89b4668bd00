//! Hostile input is ordinary input: each case here was once a way to make one user see
//! another's answer, stall or kill the process, smuggle a request past the route table or leave
//! a secret at rest. Every test fails without the fix it covers.

mod admin;
mod cardinality;
mod connections;
mod faults;
mod framing;
mod identity;
mod paths;
mod secrets;
mod shared_answers;
mod work;
