//! The generated gRPC types of `proto/baton/v1`. Only the transport and clients use them.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("baton.v1");

/// The encoded descriptor set of Baton's protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("baton_descriptor");
