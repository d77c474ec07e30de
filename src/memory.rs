//! Two settings of glibc's allocator for the long runs (the daemon, hunting
//! over exports of any size), so that resident memory follows what the
//! program holds, not the largest batch it ever decoded.

/// Blocks of 256 KB and more (read buffers, a batch's Arrow arrays) are
/// mapped on their own and unmapped when freed. By default glibc raises that
/// threshold as the program frees large blocks and then carves them out of
/// the heap, where small long-lived allocations (the rules' state) pin them:
/// resident size steps up with the largest batches. Call before the
/// threads that allocate start.
pub fn allocate_large_blocks_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Gives what was freed back to the system (after a daemon tick, which
/// allocates a batch, the rules' outputs and the state's serialised form,
/// then frees them).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it returns free pages of the
    // allocator's own heaps to the kernel and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
