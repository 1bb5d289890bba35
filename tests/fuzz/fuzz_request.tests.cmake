spoke_fuzzer(fuzz_request ${CMAKE_CURRENT_LIST_DIR}/fuzz_request.c)
