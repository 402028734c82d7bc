// Public surface of transport/: RPC frames and the RPC peer.

export { encodeFrame, FrameDecoder, FrameError, frameTypes, type Frame, type FrameType } from './frame';
export { RpcPeer, type RpcHandler, type RpcMessage, type RpcContext, type RpcOptions } from './rpc';
