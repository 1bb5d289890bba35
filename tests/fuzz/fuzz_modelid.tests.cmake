spoke_fuzzer(fuzz_modelid ${CMAKE_CURRENT_LIST_DIR}/fuzz_modelid.c)
