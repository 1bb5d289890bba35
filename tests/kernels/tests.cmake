spoke_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c LABELS unit TIMEOUT 120)
spoke_test(test_order ${CMAKE_CURRENT_LIST_DIR}/test_order.c LABELS unit TIMEOUT 120)
# micro-benchmark (built, not a test): build/bench_kernels [seconds per case]
if(NOT SPOKE_FUZZ)
  add_executable(bench_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_kernels.c)
  target_include_directories(bench_kernels PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(bench_kernels PRIVATE spoke_app)
endif()
# IQ4 kernels of one ISA against the reference, bit for bit: one ctest entry
# per ISA; exit 77 (the CPU lacks the ISA) shows as skipped, never as passed
if(NOT SPOKE_FUZZ)
  add_executable(test_iq4 ${CMAKE_CURRENT_LIST_DIR}/test_iq4.c)
  target_include_directories(test_iq4 PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(test_iq4 PRIVATE spoke_app)
  foreach(isa avx2 avx512)
    add_test(NAME test_iq4_${isa} COMMAND test_iq4 ${isa} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(test_iq4_${isa} PROPERTIES TIMEOUT 120 LABELS unit SKIP_RETURN_CODE 77)
  endforeach()
endif()
